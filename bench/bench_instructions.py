"""Instructions per call, counted by valgrind (callgrind): a load-independent view of per-call cost.

Timed benchmarks on a shared machine move by ±100 µs between runs; an instruction count does not.
Each configuration runs in its own process under ``valgrind --tool=callgrind --instr-atstart=no``;
the worker warms up, switches counting on (``callgrind_control -i on``) for N calls, then off, and the
calling thread's instructions (``--separate-threads=yes``, thread 1) are divided by N. Added = the
configuration's count minus the uninstrumented SDK method's in the same kind. What a count leaves out:
time in the kernel (auditel's SQLite commit makes ~6 fcntl and 2-6 pwrite calls per record) and cache
misses (a record written right after the SDK call runs with cold caches), so a ratio of counts is a
floor for the ratio of times, not the same thing.

Kinds: ``nonstream`` / ``stream`` (OpenAI chat completion against ``tests/fake_llm_server.py``, as in
bench_model_calls.py), ``tool`` (a plain ``@auditel.tool`` function: intent + outcome records + span; its
``span`` configuration is the peer's cost, one SDK span around the function), ``records`` (the two
``auditel.tool_call`` records of a tool call, no span: with ``span``, the budget of issue 16's tool goal),
``mcp`` (``Client.call_tool`` against an in-process ``MCPServer``, client and server: four records),
``emit`` (one ``auditel.emit`` with three attributes). Configurations: ``uninstrumented``, ``auditel``,
``otel-genai-event`` (the official instrumentation with its span and its inference-details log event
through ``BatchLogRecordProcessor``), ``otel-genai`` (span only). Spans go to a BatchSpanProcessor whose
exporter drops them; log records to a BatchLogRecordProcessor likewise (no network in the count).

    python bench/bench_instructions.py [--calls 40] [--variant before=/tmp/before/src --variant after=src]

Needs ``valgrind`` (Debian package ``valgrind``); prints a note and exits 0 without it.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "What is the answer?"}]
KINDS = ("nonstream", "stream", "tool", "mcp", "records", "emit")
CONFIGS = ("uninstrumented", "auditel", "otel-genai-event", "otel-genai")
COVERS = {
    "nonstream": CONFIGS,
    "stream": CONFIGS,
    "tool": ("uninstrumented", "auditel", "span"),
    "mcp": ("uninstrumented", "auditel"),
    "records": ("auditel",),
    "emit": ("auditel",),
}


def _worker(config: str, kind: str, calls: int) -> None:
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]  # the LLM stand-in; bench_tool_calls' scenarios
    warnings.simplefilter("ignore")
    from opentelemetry import _logs, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class NullSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class NullLogs(LogRecordExporter):
        def export(self, batch: Any) -> LogRecordExportResult:
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(NullSpans()))
    trace.set_tracer_provider(tp)
    lp = LoggerProvider()
    lp.add_log_record_processor(BatchLogRecordProcessor(NullLogs()))
    _logs.set_logger_provider(lp)

    import openai

    from fake_llm_server import FakeLLMServer

    auditel: Any = None
    with FakeLLMServer() as llm, tempfile.TemporaryDirectory() as workdir:
        if config == "auditel":
            import auditel

            auditel.configure(outbox=os.path.join(workdir, "outbox.db"))
            auditel.instrument("mcp" if kind == "mcp" else "openai")
        elif config.startswith("otel-genai"):
            os.environ["OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"] = "true" if config == "otel-genai-event" else "false"
            from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

            OpenAIInstrumentor().instrument()
        client = openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-bench", max_retries=0)
        completions = client.chat.completions

        def nonstream() -> None:
            completions.create(model="gpt-4o", messages=MESSAGES)

        def stream() -> None:
            for _ in completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
                pass

        def add(a: int, b: int) -> int:
            return a + b

        tool_fn = auditel.tool(add) if auditel is not None else add
        if config == "span":  # the peer's cost for a tool: one SDK span (bench_tool_calls.py's "span")
            tracer = trace.get_tracer("bench")
            span_attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "add"}

            def tool_fn(a: int, b: int) -> int:
                with tracer.start_as_current_span("execute_tool add", attributes=span_attrs):
                    return add(a, b)

        def tool() -> None:
            tool_fn(2, 3)

        from bench_tool_calls import _records_pair as records  # the two records of a tool call, no span

        def emit() -> None:
            auditel.emit("auditel.custom", attributes={"audit.action": "x", "k": "v", "n": 3})

        if kind == "mcp":
            _count_mcp(calls)
            if auditel is not None:
                auditel.shutdown()
            return
        fn = {"nonstream": nonstream, "stream": stream, "tool": tool, "records": records, "emit": emit}[kind]
        for _ in range(30):
            fn()
        # A full collection is due early in a process's life (the long-lived objects of the imports
        # and the warm-up); one in the counted window costs ~40 M instructions, ~1 M per call over 40
        # calls, in whichever configuration it happens to fall. Every configuration starts counting
        # from a collected heap, so that none is charged for it.
        gc.collect()
        pid = str(os.getpid())
        subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=False)
        for _ in range(calls):
            fn()
        subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True, check=False)
        if auditel is not None:
            auditel.shutdown()
    tp.shutdown()
    lp.shutdown()


def _count_mcp(calls: int) -> None:
    """``Client.call_tool`` against an in-process ``MCPServer`` (bench_tool_calls.py's mcp scenario): the
    client's and the server's work, both on the event loop's thread (the tool body runs in a worker thread,
    not counted in either configuration). Auditel is not configured at all when uninstrumented: the span
    bridge would turn the SDK's native spans into records."""
    from bench_tool_calls import MCP_ARGS, run_mcp_client

    async def counted(client: Any) -> None:
        gc.collect()
        pid = str(os.getpid())
        subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=False)
        for _ in range(calls):
            await client.call_tool("add", MCP_ARGS)
        subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True, check=False)

    run_mcp_client(50, counted)


def _count(config: str, kind: str, calls: int, src: str | None) -> float | None:
    """Calling-thread instructions per call (thousands), or None when the run failed."""
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ)
        if src:
            env["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
            f"--callgrind-out-file={out}/cg.out", sys.executable, __file__,
            "--worker", config, kind, "--calls", str(calls),
        ]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=False)
        path = Path(out) / "cg.out-01"
        if proc.returncode != 0 or not path.exists():
            print(f"  {config} {kind}: failed ({proc.returncode}): {proc.stderr[-300:]}", file=sys.stderr)
            return None
        for line in path.read_text().splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1]) / calls / 1000.0
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=40, help="counted calls per run (tool/records/emit: x5)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=SRC_DIR",
        help="count auditel imported from SRC_DIR (repeatable); default: the installed one",
    )
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker[0], args.worker[1], args.calls)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench_instructions: valgrind is not installed (Debian: apt-get install valgrind); nothing counted")
        return
    variants = [tuple(v.split("=", 1)) for v in args.variant] or [("installed", "")]
    kinds = [k for k in args.kinds.split(",") if k]
    tool_counts: dict[str, dict[str, float | None]] = {}
    for name, src in variants:
        print(f"\n[{name}] calling-thread instructions per call, thousands (kIr); added over uninstrumented")
        print(f"{'kind':10s} {'configuration':18s} {'kIr/call':>10s} {'added':>9s}")
        for kind in kinds:
            calls = args.calls * (5 if kind in ("tool", "records", "emit") else 2 if kind == "mcp" else 1)
            counts = {c: _count(c, kind, calls, src or None) for c in COVERS[kind]}
            base = counts.get("uninstrumented") or 0.0
            for config, value in counts.items():
                if value is None:
                    continue
                added = value - base if kind in ("nonstream", "stream", "tool", "mcp") else value
                print(f"{kind:10s} {config:18s} {value:10.0f} {added:9.0f}")
            if kind in ("tool", "mcp"):
                tool_counts.setdefault(name, {}).update({f"{kind} {c}": v for c, v in counts.items()})
            if kind == "records" and counts.get("auditel"):
                tool_counts.setdefault(name, {})["records"] = counts["auditel"]
            mine, event = counts.get("auditel"), counts.get("otel-genai-event")
            if kind in ("nonstream", "stream") and mine and event and base:
                print(f"{'':10s} auditel vs otel-genai-event: {(mine - base) / (event - base):.2f}x (instructions)")

    for name, c in tool_counts.items():
        pair = c.get("records")
        base, mine, span = c.get("tool uninstrumented"), c.get("tool auditel"), c.get("tool span")
        if base is not None and mine and span and pair:
            budget = pair + span - base
            print(
                f"[{name}] tool: auditel adds {mine - base:.0f} k; budget (the two records {pair:.0f} k + one SDK span"
                f" {span - base:.0f} k) {budget:.0f} k: {(mine - base) / budget:.2f}x (instructions)"
            )
        base, mine = c.get("mcp uninstrumented"), c.get("mcp auditel")
        if base is not None and mine and pair:
            print(
                f"[{name}] mcp: auditel adds {mine - base:.0f} k; budget (four records, 2 x {pair:.0f} k; the SDK's"
                f" own spans run uninstrumented too) {2 * pair:.0f} k: {(mine - base) / (2 * pair):.2f}x (instructions)"
            )


if __name__ == "__main__":
    main()
