"""Cost of the span bridge: added µs per span, with the bridge vs the same app without it.

Scenarios (spans started and ended with the real OTel SDK; the provider's only other processor
is a BatchSpanProcessor whose exporter drops spans, i.e. the span cost without network):
  http        a non-GenAI span (HTTP client attributes): the constant-time pass-through
  http-in-tool  the same span nested inside an open tool span (inherits the dedup chain)
  chat        a GenAI ``chat`` span with model, tokens and messages: one durable model_call record
  tool        a GenAI ``execute_tool`` span with arguments and result: intent + outcome records

Two providers in one process, auditel configured (durable outbox, durability=process): one with the
bridge attached, one without; batches alternate between them (paired), and the table gives the
medians and the median of the paired differences. Run: ``.venv/bin/python bench/bench_span_bridge.py [--quick]``.
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
from typing import Any

SCENARIOS = ("http", "http-in-tool", "chat", "tool")
N = {"http": 20000, "http-in-tool": 20000, "chat": 3000, "tool": 3000}

HTTP = {
    "http.request.method": "GET",
    "url.full": "https://api.example.com/v1/items?id=1",
    "server.address": "api.example.com",
    "http.response.status_code": 200,
}
CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024",
    "gen_ai.usage.input_tokens": 21,
    "gen_ai.usage.output_tokens": 9,
    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hello " * 20}]}]),
    "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "hi " * 20}]}]),
}
TOOL = {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "get_weather",
    "gen_ai.tool.call.id": "call_1",
    "gen_ai.tool.call.arguments": json.dumps({"city": "Paris", "unit": "celsius"}),
}


def run(scenario: str, rounds: int, quick: bool) -> dict[str, float]:
    """Paired and interleaved: the same spans on a provider with the bridge and on one without it,
    alternating in short batches in one process, so machine load hits both alike; medians of the
    per-batch figures."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    import auditel
    from auditel.spans.attach import attach_to

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tmp = tempfile.mkdtemp(prefix="auditel-bench-")
    auditel.configure(outbox=os.path.join(tmp, "outbox.db"))
    providers = {}
    for config in ("plain", "bridge"):
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=1 << 16))
        if config == "bridge":
            assert attach_to(provider)
        providers[config] = provider

    def make(tracer: Any) -> Callable[[], None]:
        def one_http() -> None:
            with tracer.start_as_current_span("GET", attributes=HTTP):
                pass

        def one_chat() -> None:
            with tracer.start_as_current_span("chat gpt-4o", attributes=CHAT):
                pass

        def one_tool() -> None:
            with tracer.start_as_current_span("execute_tool get_weather", attributes=TOOL) as span:
                span.set_attribute("gen_ai.tool.call.result", "sunny")

        return {"http": one_http, "http-in-tool": one_http, "chat": one_chat, "tool": one_tool}[scenario]

    fns = {c: make(p.get_tracer("bench.framework")) for c, p in providers.items()}
    outers = {}
    if scenario == "http-in-tool":
        for c, p in providers.items():
            outers[c] = p.get_tracer("bench.framework").start_span("execute_tool long_tool", attributes=TOOL)
    batch = max(20, N[scenario] // (50 if quick else 10))
    samples: dict[str, list[float]] = {"plain": [], "bridge": []}
    from opentelemetry import trace

    for i in range(rounds + 2):
        for config in ("plain", "bridge") if i % 2 else ("bridge", "plain"):
            fn = fns[config]
            token = None
            if config in outers:
                from opentelemetry import context

                token = context.attach(trace.set_span_in_context(outers[config]))
            t0 = time.perf_counter()
            for _ in range(batch):
                fn()
            us = (time.perf_counter() - t0) / batch * 1e6
            if token is not None:
                context.detach(token)
            if i >= 2:  # warm-up rounds
                samples[config].append(us)
    for outer in outers.values():
        outer.end()
    diffs = [b - p for p, b in zip(samples["plain"], samples["bridge"], strict=True)]
    return {
        "plain": statistics.median(samples["plain"]),
        "bridge": statistics.median(samples["bridge"]),
        "added": statistics.median(diffs),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker")
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(run(args.worker, args.rounds, args.quick)))
        return
    print(
        "| scenario | without bridge µs/span | with bridge µs/span"
        " | added µs/span (median of paired batches) | records/span |"
    )
    print("|---|---:|---:|---:|---:|")
    records = {"http": 0, "http-in-tool": 0, "chat": 1, "tool": 2}
    for scenario in SCENARIOS:
        cmd = [sys.executable, __file__, "--worker", scenario, "--rounds", str(args.rounds)]
        if args.quick:
            cmd.append("--quick")
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=True,
            env={k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))},
        )
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"| {scenario} | {res['plain']:.2f} | {res['bridge']:.2f} | {res['added']:+.2f} | {records[scenario]} |")


if __name__ == "__main__":
    main()
