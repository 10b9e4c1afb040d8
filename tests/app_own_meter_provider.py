"""An app that sets its own MeterProvider and LoggerProvider in code, as apps with their own OTel
set-up do. No auditel code. Run by test_zero_code_providers.py under ``auditel run``; prints JSON:
which providers are the global ones and what its own metric reader collected."""

import json
import sys

from opentelemetry import _logs, metrics
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

reader = InMemoryMetricReader()
meter_provider = MeterProvider(metric_readers=[reader])
metrics.set_meter_provider(meter_provider)
logger_provider = LoggerProvider()
_logs.set_logger_provider(logger_provider)

metrics.get_meter("app").create_counter("app.requests").add(3)
data = reader.get_metrics_data()
points = [
    point.value
    for rm in (data.resource_metrics if data else [])
    for sm in rm.scope_metrics
    for m in sm.metrics
    if m.name == "app.requests"
    for point in m.data.data_points
]
print(
    json.dumps(
        {
            "meter_provider_is_ours": metrics.get_meter_provider() is meter_provider,
            "logger_provider_is_ours": _logs.get_logger_provider() is logger_provider,
            "points": points,
        }
    )
)
sys.exit(0)
