"""Per-call overhead of model-call instrumentation on a local chat completion.

One run compares, each in its own Python process (instrumentations patch the same SDK methods
and a global TracerProvider cannot be replaced, so a fresh process per configuration is the fair
set-up; all share one venv, their dependencies install side by side):

* ``uninstrumented``: the openai client alone;
* ``auditel``: auditel (span + durable ``auditel.model_call`` record committed to SQLite per call);
* ``otel-genai``: the official ``opentelemetry-instrumentation-genai-openai``;
* ``openllmetry``: OpenLLMetry's ``opentelemetry-instrumentation-openai`` (content capture off,
  like the others' defaults).

Every instrumented configuration has a stock OTel SDK pipeline: TracerProvider and LoggerProvider
with batch processors exporting OTLP/HTTP to a local rotel collector (``tests/otlp_harness.py``).
The model is ``tests/fake_llm_server.py`` in the parent process. Non-streaming and streaming
(4 content chunks + finish) chat completions. Reported: client-process CPU µs per call (the
instrumentation's real cost, little disturbed by other load on the machine) and median wall µs per
call, each with the time added over ``uninstrumented`` and the ratio.

    python bench/bench_model_calls.py [--calls 400] [--rounds 3]
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

MODES = ("uninstrumented", "auditel", "otel-genai", "openllmetry")
MESSAGES = [{"role": "user", "content": "What is the answer?"}]


# --- worker (one configuration per process) -------------------------------------------------------------
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


def _setup(mode: str, endpoint: str, workdir: str) -> None:
    if mode == "uninstrumented":
        return
    _stock_pipeline(endpoint)
    if mode == "auditel":
        import auditel

        auditel.configure(outbox=os.path.join(workdir, "outbox.db"))
        auditel.instrument("openai")
    elif mode == "otel-genai":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()
    elif mode == "openllmetry":
        os.environ["TRACELOOP_TRACE_CONTENT"] = "false"
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()


def _time_calls(fn: Any, calls: int) -> tuple[float, float]:
    """(median wall µs per call, client-process CPU µs per call incl. its exporter/worker threads)."""
    for _ in range(max(20, calls // 10)):  # warm-up
        fn()
    samples = []
    cpu0 = time.process_time_ns()
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    cpu = (time.process_time_ns() - cpu0) / calls / 1000.0
    return statistics.median(samples) / 1000.0, cpu


def worker(mode: str, base_url: str, endpoint: str, calls: int) -> dict[str, float]:
    import warnings

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as workdir:
        _setup(mode, endpoint, workdir)
        import openai

        client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)

        def plain() -> None:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

        def streamed() -> None:
            for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
                pass

        wall_n, cpu_n = _time_calls(plain, calls)
        wall_s, cpu_s = _time_calls(streamed, calls)
        out = {"nonstream_us": wall_n, "stream_us": wall_s, "nonstream_cpu_us": cpu_n, "stream_cpu_us": cpu_s}
        if mode == "auditel":
            import auditel

            out["records"] = auditel.status()["records_total"]
            auditel.shutdown()
        return out


# --- orchestrator ----------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=MODES)
    parser.add_argument("--base-url")
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.base_url, args.endpoint, args.calls)))
        return

    from fake_llm_server import FakeLLMServer
    from otlp_harness import CaptureServer, RotelCollector

    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    with FakeLLMServer() as llm, CaptureServer() as capture, RotelCollector(export_to=capture.endpoint) as rotel:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "TRACELOOP_"))}
        for round_no in range(args.rounds):
            for mode in MODES:  # interleaved rounds spread machine noise over all modes
                cmd = [sys.executable, __file__, "--worker", mode, "--base-url", llm.openai_base_url,
                       "--endpoint", rotel.http_endpoint, "--calls", str(args.calls)]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
                if proc.returncode != 0:
                    sys.exit(f"{mode} failed:\n{proc.stderr}")
                results[mode].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"round {round_no + 1} {mode:15s} {results[mode][-1]}", file=sys.stderr)

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    print(f"\nchat completion against a local server, {args.calls} calls x {args.rounds} rounds (median of rounds)")
    added: dict[str, dict[str, float]] = {m: {} for m in MODES}
    for label, suffix in (("client CPU µs per call (process-wide, incl. export threads)", "_cpu_us"), ("wall µs per call (median)", "_us")):
        print(f"\n{label}")
        print(f"{'configuration':16s} {'non-stream':>11s} {'added':>8s} {'ratio':>6s} {'stream':>9s} {'added':>8s} {'ratio':>6s}")
        base_n, base_s = med("uninstrumented", "nonstream" + suffix), med("uninstrumented", "stream" + suffix)
        for mode in MODES:
            n, s = med(mode, "nonstream" + suffix), med(mode, "stream" + suffix)
            added[mode][suffix] = n - base_n
            added[mode]["s" + suffix] = s - base_s
            print(f"{mode:16s} {n:11.1f} {n - base_n:8.1f} {n / base_n:6.2f} {s:9.1f} {s - base_s:8.1f} {s / base_s:6.2f}")
    for kind, key in (("non-stream", "_cpu_us"), ("stream", "s_cpu_us")):
        lighter = min(added["otel-genai"][key], added["openllmetry"][key])
        ours = added["auditel"][key]
        ratio = ours / lighter if lighter > 0 else float("nan")
        print(f"auditel added CPU vs the lighter competitor, {kind}: {ours:.1f} vs {lighter:.1f} µs ({ratio:.2f}x)")
    print(f"auditel committed {results['auditel'][-1].get('records', 0):.0f} records to its outbox in the last round")


if __name__ == "__main__":
    main()
