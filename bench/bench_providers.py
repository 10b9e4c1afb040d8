"""Per-call overhead of the provider instrumentations: google-genai, Amazon Bedrock (botocore), LiteLLM.

For each SDK, each configuration runs in its own Python process (instrumentations patch the same
methods and a global TracerProvider cannot be replaced), rounds interleaved with the order rotated:

* ``uninstrumented``: the SDK alone;
* ``auditel``: span + durable ``auditel.model_call`` record committed to SQLite per call;
* ``otel``: the official OpenTelemetry instrumentation for that SDK where one exists
  (``opentelemetry-instrumentation-google-genai``: note that 1.3b0 declares ``google-genai<3`` and
  instruments nothing on 3.x; ``opentelemetry-instrumentation-botocore``, whose Bedrock extension
  makes GenAI spans); LiteLLM has none;
* ``openllmetry``: OpenLLMetry's (``opentelemetry-instrumentation-google-generativeai``, which
  instruments ``google.genai``; ``-bedrock``; ``-litellm``), content tracing off.

Every instrumented configuration has a stock OTel SDK pipeline (batch processors, OTLP/HTTP to a local
rotel collector). The models are the stand-ins of the tests (``tests/providers/provider_server.py``
for Gemini and Bedrock, ``tests/fake_llm_server.py`` for LiteLLM's OpenAI route). Non-streaming and
streaming calls (4 chunks) alternate in blocks. Reported: caller-thread CPU µs per call (median of
per-call ``thread_time_ns``, median over rounds) and the time added over ``uninstrumented``.

    python bench/bench_providers.py [--calls 200] [--rounds 3] [--sdk google_genai bedrock litellm]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "providers")]

CONFIGS = {
    "google_genai": ("uninstrumented", "auditel", "otel", "openllmetry"),
    "bedrock": ("uninstrumented", "auditel", "otel", "openllmetry"),
    "litellm": ("uninstrumented", "auditel", "openllmetry"),
}
KINDS = ("nonstream", "stream")


# --- worker ------------------------------------------------------------------------------------------------
def _stock_pipeline(endpoint: str) -> None:
    from opentelemetry import _logs, trace
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(tp)
    lp = LoggerProvider()
    lp.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))
    _logs.set_logger_provider(lp)


def _instrument(sdk: str, config: str, workdir: str) -> None:
    if config == "auditel":
        import auditel

        auditel.configure(outbox=os.path.join(workdir, "outbox.db"))
        auditel.instrument(sdk)
    elif config == "otel" and sdk == "google_genai":
        from opentelemetry.instrumentation.google_genai import (
            GoogleGenAiSdkInstrumentor,
        )

        GoogleGenAiSdkInstrumentor().instrument()
    elif config == "otel" and sdk == "bedrock":
        from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

        BotocoreInstrumentor().instrument()
    elif config == "openllmetry":
        os.environ["TRACELOOP_TRACE_CONTENT"] = "false"
        if sdk == "google_genai":
            from opentelemetry.instrumentation.google_generativeai import (
                GoogleGenerativeAiInstrumentor,
            )

            GoogleGenerativeAiInstrumentor().instrument()
        elif sdk == "bedrock":
            from opentelemetry.instrumentation.bedrock import BedrockInstrumentor

            BedrockInstrumentor().instrument()
        else:
            from opentelemetry.instrumentation.litellm import LiteLLMInstrumentor

            LiteLLMInstrumentor().instrument()


def _calls(sdk: str, url: str, keep: list[Any]) -> dict[str, Callable[[], None]]:
    if sdk == "google_genai":
        from google import genai

        client = genai.Client(api_key="bench", http_options={"base_url": url})
        keep.append(client)

        def g_plain() -> None:
            client.models.generate_content(model="gemini-bench", contents="What is the answer?")

        def g_stream() -> None:
            for _ in client.models.generate_content_stream(model="gemini-bench", contents="What is the answer?"):
                pass

        return {"nonstream": g_plain, "stream": g_stream}
    if sdk == "bedrock":
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=Config(retries={"max_attempts": 1})
        )
        messages = [{"role": "user", "content": [{"text": "What is the answer?"}]}]

        def b_plain() -> None:
            client.converse(modelId="amazon.nova-bench", messages=messages)

        def b_stream() -> None:
            for _ in client.converse_stream(modelId="amazon.nova-bench", messages=messages)["stream"]:
                pass

        return {"nonstream": b_plain, "stream": b_stream}
    import litellm

    kw = {
        "model": "openai/gpt-4o",
        "api_base": url,
        "api_key": "sk-bench",
        "messages": [{"role": "user", "content": "What is the answer?"}],
    }

    def l_plain() -> None:
        litellm.completion(**kw)

    def l_stream() -> None:
        for _ in litellm.completion(stream=True, **kw):
            pass

    return {"nonstream": l_plain, "stream": l_stream}


def worker(sdk: str, config: str, url: str, endpoint: str, calls: int, blocks: int) -> dict[str, float]:
    import gc
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as workdir:
        if config != "uninstrumented":
            _stock_pipeline(endpoint)
            _instrument(sdk, config, workdir)
        keep: list[Any] = []
        fns = _calls(sdk, url, keep)
        for fn in fns.values():  # warm-up: imports, connection pools, caches
            for _ in range(max(10, calls // 10)):
                fn()
        samples: dict[str, list[int]] = {k: [] for k in fns}
        per_block = max(1, calls // blocks)
        thread_ns = time.thread_time_ns
        gc.collect()
        gc.freeze()
        for block in range(blocks):
            for kind in KINDS if block % 2 == 0 else tuple(reversed(KINDS)):
                fn, out = fns[kind], samples[kind]
                for _ in range(per_block):
                    c0 = thread_ns()
                    fn()
                    out.append(thread_ns() - c0)
        result = {f"{kind}_thread_us": statistics.median(v) / 1000.0 for kind, v in samples.items()}
        if config == "auditel":
            import auditel

            result["records"] = float(auditel.status()["records_total"])
            auditel.shutdown()
        return result


# --- orchestrator --------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per kind per worker process")
    parser.add_argument("--rounds", type=int, default=3, help="worker processes per configuration")
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--sdk", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--worker", nargs=2, metavar=("SDK", "CONFIG"))
    parser.add_argument("--url")
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.url, args.endpoint, args.calls, args.blocks)))
        return

    from provider_server import ProviderServer

    from fake_llm_server import FakeLLMServer
    from otlp_harness import CaptureServer, RotelCollector

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "TRACELOOP_"))}
    env.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "AWS_ACCESS_KEY_ID": "AKIABENCH",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with (
        ProviderServer() as prov,
        FakeLLMServer() as llm,
        CaptureServer() as capture,
        RotelCollector(export_to=capture.endpoint) as rotel,
    ):
        for sdk in args.sdk:
            url = llm.openai_base_url if sdk == "litellm" else prov.url
            configs = CONFIGS[sdk]
            for round_no in range(args.rounds):
                shift = round_no % len(configs)
                for config in configs[shift:] + configs[:shift]:
                    cmd = [
                        sys.executable,
                        __file__,
                        "--worker",
                        sdk,
                        config,
                        "--url",
                        url,
                        "--endpoint",
                        rotel.http_endpoint,
                        "--calls",
                        str(args.calls),
                        "--blocks",
                        str(args.blocks),
                    ]
                    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=False)
                    if proc.returncode != 0:
                        sys.exit(f"{sdk}/{config} failed:\n{proc.stderr}")
                    results.setdefault((sdk, config), []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
                    print(f"{sdk} round {round_no + 1} {config:15s} {results[(sdk, config)][-1]}", file=sys.stderr)

    print(
        f"\ncaller-thread CPU µs per call (median of per-call samples, median over {args.rounds} rounds of "
        f"{args.calls} calls per kind); added = over the uninstrumented SDK in the same run"
    )
    print(f"{'sdk':13s} {'configuration':16s} {'non-stream':>11s} {'added':>8s} {'stream':>9s} {'added':>8s}")
    for sdk in args.sdk:

        def med(config: str, kind: str, sdk: str = sdk) -> float:
            return statistics.median(r[f"{kind}_thread_us"] for r in results[(sdk, config)])

        base = {kind: med("uninstrumented", kind) for kind in KINDS}
        for config in CONFIGS[sdk]:
            n, s = med(config, "nonstream"), med(config, "stream")
            print(f"{sdk:13s} {config:16s} {n:11.1f} {n - base['nonstream']:8.1f} {s:9.1f} {s - base['stream']:8.1f}")
        recs = results.get((sdk, "auditel"), [{}])[-1].get("records", 0)
        print(f"{'':13s} (auditel committed {recs:.0f} records in its last round)")


if __name__ == "__main__":
    main()
