"""Settings of the span bridge (``auditel.spans``) and the zero-code trace-exporter check.

* ``AUDITEL_SPAN_BRIDGE``: ``true`` (default when auditel is enabled) or ``false``.
* ``AUDITEL_SPAN_BRIDGE_SCOPES``: comma-separated instrumentation scope names (a trailing ``*``
  matches a prefix) whose spans the bridge maps; empty (default) maps every scope.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from auditel.config.settings import Reader, _parse_bool


@dataclass(frozen=True)
class SpanBridgeSettings:
    enabled: bool = True
    scopes: tuple[str, ...] = ()  # empty: every scope

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SpanBridgeSettings:
        env = os.environ if env is None else env
        reader = Reader(env)
        reader.take("enabled", "AUDITEL_SPAN_BRIDGE", _parse_bool, "one of true, false (also 1/0, yes/no, on/off)")
        reader.check("invalid auditel configuration")
        scopes = tuple(s.strip() for s in env.get("AUDITEL_SPAN_BRIDGE_SCOPES", "").split(",") if s.strip())
        return cls(enabled=reader.values.get("enabled", True), scopes=scopes)

    def scope_allowed(self, name: str) -> bool:
        if not self.scopes:
            return True
        for pattern in self.scopes:
            if pattern.endswith("*"):
                if name.startswith(pattern[:-1]):
                    return True
            elif name == pattern:
                return True
        return False


# Entry-point name -> the package that provides it (the SDK's own "console" needs nothing more).
_PACKAGES = {
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
}
_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http", "http/json": "otlp_proto_http"}


def traces_exporter_names(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    raw = env.get("OTEL_TRACES_EXPORTER", "")
    if not raw.strip() or raw.strip().lower() == "none":
        return []
    return [name.strip() for name in raw.split(",") if name.strip()]


def missing_trace_exporters(env: Mapping[str, str] | None = None) -> list[str]:
    """One message per OTEL_TRACES_EXPORTER name whose package is not installed, naming the package.

    ``otlp`` resolves as the SDK resolves it: gRPC unless OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL says
    ``http/protobuf``.
    """
    env = os.environ if env is None else env
    names = traces_exporter_names(env)
    if not names:
        return []  # nothing to export: no need to scan every distribution's entry points (start-up)
    import importlib.metadata  # here: ~20 ms to import, needed only when an exporter is named

    installed = {ep.name for ep in importlib.metadata.entry_points(group="opentelemetry_traces_exporter")}
    problems: list[str] = []
    for name in names:
        entry = name
        if name == "otlp":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
            entry = _BY_PROTOCOL.get(protocol.strip(), "otlp_proto_grpc")
        if entry in installed:
            continue
        package = _PACKAGES.get(entry)
        if entry == "otlp_proto_grpc":
            hint = (
                f"pip install {package} (or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and"
                " pip install 'auditel[otlp]')"
            )
        elif package is not None:
            hint = f"pip install {package} (or pip install 'auditel[otlp]')"
        else:
            hint = f"install the package that provides the {name!r} span exporter"
        problems.append(
            f"OTEL_TRACES_EXPORTER={env.get('OTEL_TRACES_EXPORTER', '')!r}: the span exporter {name!r} is not"
            f" installed; {hint}"
        )
    return problems


# The variables that ask the OTel SDK's own configurator for something (exporters, the logging handler).
SDK_EXPORTER_VARS = ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER")


def sdk_setup_requested(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks the OTel SDK configurator for anything: an exporter named in
    OTEL_{TRACES,METRICS,LOGS}_EXPORTER (other than ``none``), or the logging handler. Without that,
    the zero-code start must not run it: it would set global Meter/Logger providers with no
    readers, and the application's own providers, set later, would be refused."""
    env = os.environ if env is None else env
    for var in SDK_EXPORTER_VARS:
        names = [n.strip().lower() for n in env.get(var, "").split(",") if n.strip()]
        if any(n != "none" for n in names):
            return True
    return env.get("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "").strip().lower() == "true"
