"""Overhead per tool call: auditel vs no instrumentation vs OpenLLMetry vs the official OTel instrumentation.

Scenarios (a trivial tool that adds two integers):
  records    no tool: just the two durable records (``auditel.tool_call`` intent + outcome), the floor
             of any durable intent/outcome audit; the rest of auditel's overhead is wrapper and span
  function   a plain Python function (auditel: ``@auditel.tool``)
  langchain  a LangChain ``@tool`` run with ``tool.invoke({...})``
  mcp        ``Client.call_tool`` against an in-process ``MCPServer`` over JSON-RPC memory streams
             (client and server in one process, so auditel records both sides: 4 records per call)

Configurations (each scenario x configuration runs in its own subprocess, so instrumentations never
mix; all share the same OTel SDK setup: a TracerProvider whose spans go to a BatchSpanProcessor with
an exporter that drops them, i.e. the span-creation cost without network):
  none         no instrumentation (the MCP SDK's own native spans still run, as they do by default)
  auditel      auditel configured (durable SQLite outbox, durability=process) + its instrumentation
  auditel-fsync  same, durability=fsync (fsync on every commit)
  auditel-tmpfs  durability=process with the outbox on /dev/shm: the CPU cost without the disk
  openllmetry  traceloop's opentelemetry-instrumentation-{langchain,mcp} (where they cover it)
  otel         the official opentelemetry-instrumentation-genai-langchain (langchain only)
  span         a plain ``execute_tool`` span around the function (function only): what a span costs
               where no vendor instruments plain functions

Goal (issue 16): auditel's added time per call <= (records per call) x one durable emit + the span cost
of the official / OpenLLMetry instrumentation for the same framework, whichever is lower (for plain
functions a bare span; for MCP the SDK's own spans, already in ``none``). One durable emit is measured
by the ``records`` scenario (two records, no wrapper, no span) in the same run. The table after the
main one prints each budget and the ratio.

Prints microseconds per call (median of repeats), spans and audit records produced per call, and the
ratio to ``none``. Run: ``.venv/bin/python bench/bench_tool_calls.py [--quick]``.
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
from typing import Any, Callable

SCENARIOS = ("records", "function", "langchain", "mcp")
CONFIGS = ("none", "auditel", "auditel-fsync", "auditel-tmpfs", "openllmetry", "otel", "span")
COVERS = {  # which configurations instrument which scenario at all
    "records": {"auditel", "auditel-fsync", "auditel-tmpfs"},  # the floor: two durable records, no wrapper, no span
    "function": {"none", "auditel", "auditel-fsync", "auditel-tmpfs", "span"},
    "langchain": {"none", "auditel", "auditel-fsync", "auditel-tmpfs", "openllmetry", "otel"},
    "mcp": {"none", "auditel", "auditel-fsync", "auditel-tmpfs", "openllmetry"},
}
CALLS = {"records": 3000, "function": 3000, "langchain": 1500, "mcp": 600}


# --- worker (one scenario x configuration per process) -------------------------------------------
def _setup_tracing() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Counting(SpanExporter):
        count = 0

        def export(self, spans: Any) -> SpanExportResult:
            Counting.count += len(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Counting(), max_queue_size=1 << 20))
    trace.set_tracer_provider(provider)
    return provider, Counting


def _configure(config: str, tmp: str) -> None:
    if config == "auditel-tmpfs":
        tmp = tempfile.mkdtemp(prefix="auditel-bench-", dir="/dev/shm")
    if config.startswith("auditel"):
        import auditel

        auditel.configure(outbox=os.path.join(tmp, "outbox.db"),
                          durability="fsync" if config == "auditel-fsync" else "process")


def _instrument(config: str, scenario: str) -> None:
    if config.startswith("auditel") and scenario not in ("records", "function"):
        import auditel

        auditel.instrument(scenario)
    elif config == "openllmetry":
        if scenario == "langchain":
            from opentelemetry.instrumentation.langchain import LangchainInstrumentor

            LangchainInstrumentor().instrument()
        elif scenario == "mcp":
            from opentelemetry.instrumentation.mcp import McpInstrumentor

            McpInstrumentor().instrument()
    elif config == "otel" and scenario == "langchain":
        from opentelemetry.instrumentation.genai.langchain import LangChainInstrumentor

        LangChainInstrumentor().instrument()


def _records_call(config: str) -> Callable[[], Any]:
    import auditel

    def two_records() -> None:
        auditel.tool_call("add", phase="intent", arguments={"a": 1, "b": 2})
        auditel.tool_call("add", phase="outcome", result=3, duration_ms=0.0)

    return two_records


def _function_call(config: str) -> Callable[[], Any]:
    def add(a: int, b: int) -> int:
        return a + b

    if config.startswith("auditel"):
        import auditel

        add = auditel.tool("add")(add)
    if config == "span":
        from opentelemetry import trace

        tracer = trace.get_tracer("bench")
        plain = add

        def add(a: int, b: int) -> int:
            with tracer.start_as_current_span("execute_tool add", attributes={"gen_ai.operation.name": "execute_tool",
                                                                             "gen_ai.tool.name": "add"}):
                return plain(a, b)
    return lambda: add(1, 2)


def _langchain_call(config: str) -> Callable[[], Any]:
    from langchain_core.tools import tool

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return lambda: add.invoke({"a": 1, "b": 2})


def _run_mcp(config: str, n: int, repeats: int) -> list[float]:
    import anyio
    from mcp import Client
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench")

    @server.tool()
    def add(a: int, b: int) -> int:
        return a + b

    async def main() -> list[float]:
        out = []
        async with Client(server, mode="legacy") as client:
            for _ in range(50):
                await client.call_tool("add", {"a": 1, "b": 2})
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(n):
                    await client.call_tool("add", {"a": 1, "b": 2})
                out.append((time.perf_counter() - t0) / n * 1e6)
        return out

    return anyio.run(main)


def worker(scenario: str, config: str, n: int, repeats: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="auditel-bench-")
    provider, counting = _setup_tracing()
    _configure(config, tmp)
    _instrument(config, scenario)
    if scenario == "mcp":
        samples = _run_mcp(config, n, repeats)
    else:
        call = {"records": _records_call, "function": _function_call, "langchain": _langchain_call}[scenario](config)
        for _ in range(200):
            call()
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(n):
                call()
            samples.append((time.perf_counter() - t0) / n * 1e6)
    provider.force_flush()
    total_calls = n * repeats + (50 if scenario == "mcp" else 200)
    records = 0
    if config.startswith("auditel"):
        import auditel

        status = auditel.status()
        records = status["records_total"] - 1  # minus the stream-start record
        assert not status["errors"], status["errors"]
    return {"us": statistics.median(samples), "spans": counting.count / total_calls, "records": records / total_calls}


# --- driver --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls (smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", nargs=2, metavar=("SCENARIO", "CONFIG"), help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.calls, args.repeats)))
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "TRACELOOP_"))}
    env["TRACELOOP_TELEMETRY"] = "false"
    results: dict[tuple[str, str], dict[str, Any] | str] = {}
    for scenario in SCENARIOS:
        for config in CONFIGS:
            if config not in COVERS[scenario]:
                continue
            n = CALLS[scenario] // (10 if args.quick else 1)
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", scenario, config, "--calls", str(n), "--repeats", str(args.repeats)],
                capture_output=True, text=True, env=env,
            )
            if proc.returncode != 0:
                results[(scenario, config)] = "error: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:110]
            else:
                results[(scenario, config)] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.repeats} repeats\n")
    print(f"{'scenario':<10} {'config':<14} {'us/call':>9} {'overhead us':>12} {'x none':>7} {'spans/call':>11} {'records/call':>13}")
    for scenario in SCENARIOS:
        base = results.get((scenario, "none"))
        base_us = base["us"] if isinstance(base, dict) else None
        for config in CONFIGS:
            if config not in COVERS[scenario]:
                continue
            r = results[(scenario, config)]
            if isinstance(r, str):
                print(f"{scenario:<10} {config:<14} {r}")
                continue
            ratio = f"{r['us'] / base_us:6.2f}x" if base_us else "-"
            over = f"{r['us'] - base_us:12.1f}" if base_us else f"{'-':>12}"
            print(f"{scenario:<10} {config:<14} {r['us']:9.1f} {over} {ratio:>7} {r['spans']:11.2f} {r['records']:13.2f}")
    _print_goal(results)


def _print_goal(results: dict[tuple[str, str], dict[str, Any] | str]) -> None:
    """auditel's added time against (records x one durable emit + the lightest peer span cost)."""
    def us(scenario: str, config: str) -> float | None:
        r = results.get((scenario, config))
        return r["us"] if isinstance(r, dict) else None

    floor = results.get(("records", "auditel"))
    if not isinstance(floor, dict) or not floor["records"]:
        print("\ngoal: the records scenario failed, no emit cost to compare with")
        return
    emit = floor["us"] / floor["records"]
    print(f"\ngoal: added per call <= records/call x one durable emit ({emit:.1f} us, from the records scenario)"
          " + the lightest peer's span cost for the framework")
    print(f"{'scenario':<10} {'auditel added':>14} {'records':>8} {'span cost':>10} {'(from)':<12} {'budget':>8} {'ratio':>7}")
    for scenario in ("function", "langchain", "mcp"):
        base, ours = us(scenario, "none"), results.get((scenario, "auditel"))
        if base is None or not isinstance(ours, dict):
            continue
        peers = {  # only peers that made a span for the call (one that makes none is not a span cost)
            c: us(scenario, c)
            for c in ("openllmetry", "otel", "span")
            if us(scenario, c) is not None and results[(scenario, c)]["spans"] > 0  # type: ignore[index]
        }
        if peers:
            source, peer = min(((c, v - base) for c, v in peers.items()), key=lambda item: item[1])
        elif scenario == "mcp":
            source, peer = "native spans", 0.0  # the MCP SDK's own spans already run in "none"
        else:
            source, peer = "no peer ran", 0.0  # install the bench extra for the peers
        added, budget = ours["us"] - base, ours["records"] * emit + max(peer, 0.0)
        print(f"{scenario:<10} {added:14.1f} {ours['records']:8.1f} {peer:10.1f} {source:<12} {budget:8.1f}"
              f" {added / budget:6.2f}x")


if __name__ == "__main__":
    main()
