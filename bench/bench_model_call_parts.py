"""Where auditel's per-call time goes: parts of a model call switched off one at a time, in one process.

Same set-up as ``bench_model_calls.py``'s rotations (stock TracerProvider and LoggerProvider with batch
processors exporting OTLP/HTTP to a local rotel collector; ``auditel.configure()`` defaults; the OpenAI
SDK against ``tests/fake_llm_server.py``; non-streaming chat completions). Each *part* is switched off by
replacing one internal function for its block only (an experiment: the records written in those blocks
are incomplete, which is why this is a bench and never a configuration), then restored. Blocks of every
variant are interleaved, the order rotated each block; reported: median caller-thread CPU per call added
over the unwrapped SDK method, and the part's share (whole added time minus the variant's).

    python bench/bench_model_call_parts.py [--calls 300] [--blocks 16] [--parts no_record,no_commit]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

ZERO_DIGEST = "hmac-sha256:" + "0" * 64
MESSAGES = [{"role": "user", "content": "What is the answer?"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="calls per variant per block")
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--parts", default="", help="comma-separated parts to measure (default: all)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from opentelemetry import _logs, trace
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from fake_llm_server import FakeLLMServer
    from otlp_harness import CaptureServer, RotelCollector

    with FakeLLMServer() as llm, CaptureServer() as capture, RotelCollector(export_to=capture.endpoint) as rotel, \
            tempfile.TemporaryDirectory() as workdir:
        ep = rotel.http_endpoint
        tp = TracerProvider()
        tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{ep}/v1/traces")))
        trace.set_tracer_provider(tp)
        lp = LoggerProvider()
        lp.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{ep}/v1/logs")))
        _logs.set_logger_provider(lp)

        import openai
        from openai.resources.chat.completions import Completions

        import auditel
        from auditel import runtime
        from auditel.instrumentation.genai import invocation
        from auditel.pipeline import processor as processor_module

        auditel.configure(outbox=os.path.join(workdir, "outbox.db"))
        auditel.instrument("openai")
        rt: Any = runtime.current()
        proc = rt.processor
        client = openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-bench", max_retries=0)
        completions = client.chat.completions
        raw = Completions.__dict__["create"].__wrapped__

        def instrumented() -> None:
            completions.create(model="gpt-4o", messages=MESSAGES)

        def unwrapped() -> None:
            raw(completions, model="gpt-4o", messages=MESSAGES)

        saved: dict[tuple[Any, str], tuple[bool, Any]] = {}

        def patch(obj: Any, name: str, value: Any) -> None:
            own = vars(obj)
            saved.setdefault((obj, name), (name in own, own.get(name)))
            setattr(obj, name, value)

        def restore() -> None:
            for (obj, name), (had, value) in saved.items():
                if had:
                    setattr(obj, name, value)
                else:
                    delattr(obj, name)
            saved.clear()

        def nothing(*_: Any, **__: Any) -> None:
            return None

        def keep_dict(attrs: Any, *_: Any, **__: Any) -> dict[str, Any]:
            return dict(attrs)

        parts: dict[str, tuple[str, Callable[[], None]]] = {
            "no_record": ("the auditel.model_call record (Invocation._record)",
                          lambda: patch(invocation.Invocation, "_record", nothing)),
            "no_model_call": ("the api model_call helper and all below",
                              lambda: patch(invocation, "model_call", nothing)),
            "no_emit": ("Runtime.emit and all below", lambda: patch(rt, "emit", nothing)),
            "no_on_emit": ("AuditProcessor.on_emit and all below", lambda: patch(proc, "on_emit", nothing)),
            "no_commit": ("the chain and the commit (AuditProcessor._commit)",
                          lambda: patch(proc, "_commit", lambda record, *a, **k: record)),
            "no_append": ("the SQLite INSERT (Outbox.append)", lambda: patch(proc.outbox, "append", nothing)),
            "no_redact": ("redaction of the attributes", lambda: patch(proc.redactor, "redact_attributes", keep_dict)),
            "no_safe_redact": ("safe form and redaction",
                               lambda: (patch(runtime, "safe_attributes", keep_dict),
                                        patch(proc.redactor, "redact_attributes", keep_dict))),
            "no_digest": ("the keyed digests", lambda: patch(rt, "_digester", lambda v: (ZERO_DIGEST, 10))),
            "no_bridge": ("the span event pointing at the record",
                          lambda: patch(processor_module, "add_span_event", nothing)),
            "no_span_bridge": ("the span bridge (span processor) on auditel's own span",
                               lambda: patch(rt.span_bridge, "runtime", None) if rt.span_bridge else None),
        }
        chosen = [p for p in args.parts.split(",") if p] or list(parts)
        variants: dict[str, tuple[Callable[[], None], Callable[[], None] | None]] = {
            "unwrapped": (unwrapped, None), "auditel": (instrumented, None)}
        for name in chosen:
            variants[name] = (instrumented, parts[name][1])
        samples: dict[str, list[int]] = {name: [] for name in variants}
        for _ in range(100):
            instrumented()
            unwrapped()
        gc.collect()
        gc.freeze()
        names = list(variants)
        thread_ns = time.thread_time_ns
        for block in range(args.blocks):
            shift = block % len(names)
            for name in names[shift:] + names[:shift]:
                fn, switch_off = variants[name]
                if switch_off is not None:
                    switch_off()
                try:
                    for _ in range(5):
                        fn()
                    out = samples[name]
                    for _ in range(args.calls):
                        t0 = thread_ns()
                        fn()
                        out.append(thread_ns() - t0)
                finally:
                    restore()
        base = statistics.median(samples["unwrapped"])
        whole = statistics.median(samples["auditel"]) - base
        print(f"unwrapped call {base / 1e3:.1f} µs; auditel adds {whole / 1e3:.1f} µs of caller-thread CPU per call")
        print(f"{'switched off':16s} {'added':>8s} {'part':>8s}  what")
        for name in chosen:
            added = statistics.median(samples[name]) - base
            print(f"{name:16s} {added / 1e3:8.1f} {(whole - added) / 1e3:8.1f}  {parts[name][0]}")
        auditel.shutdown()
        tp.shutdown()  # before the collector stops
        lp.shutdown()


if __name__ == "__main__":
    main()
