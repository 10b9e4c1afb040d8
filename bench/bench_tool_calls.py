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
from collections.abc import Awaitable, Callable
from typing import Any

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
    return _records_pair


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


MCP_ARGS = {"a": 1, "b": 2}


def run_mcp_client(warm: int, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """The MCP scenario: an in-process ``MCPServer`` with one tool, ``add``, and a ``Client`` over JSON-RPC
    memory streams. Makes ``warm`` calls, then returns ``body(client)``'s result (its timed calls are
    ``client.call_tool("add", MCP_ARGS)``). Also used by bench_instructions.py."""
    import anyio
    from mcp import Client
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench")

    @server.tool()
    def add(a: int, b: int) -> int:
        return a + b

    async def main() -> Any:
        async with Client(server, mode="legacy") as client:
            for _ in range(warm):
                await client.call_tool("add", MCP_ARGS)
            return await body(client)

    return anyio.run(main)


def _run_mcp(config: str, n: int, repeats: int) -> list[float]:
    async def timed(client: Any) -> list[float]:
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(n):
                await client.call_tool("add", MCP_ARGS)
            out.append((time.perf_counter() - t0) / n * 1e6)
        return out

    return run_mcp_client(50, timed)


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


# --- rotating mode: every configuration of a scenario in ONE process, block by block ---------------
# Separate processes started minutes apart (the mode above) differ by ±40% on a shared machine: its
# ``none`` and peer rows move as much as auditel's. Here each scenario runs in one process and its
# configurations are switched block by block (instrument, time a block, uninstrument), the order
# rotated each round, and the caller thread's CPU time per call is taken (``thread_time``: time the
# thread waits for the CPU or the GIL is not counted). Peers' spans go to a TracerProvider of their
# own (a dropping exporter, like the global one) so that auditel's span bridge, which is attached to
# the global provider, never turns a peer's spans into records and charges the peer for them. The
# ``records`` configuration (two ``auditel.tool_call`` records, no wrapper, no span) runs in every
# scenario's process: the budget uses that process's own durable emit.
#
# The function scenario also times two parts of auditel's call (``--rotate`` prints them apart):
# ``own-span``, the ``execute_tool`` span auditel's decorator starts (its tracer, on the global provider
# with auditel's span processor), and ``records-in-span``, the same two records written inside that span
# (each then also becomes a span event and carries the trace context).
ROTATE = {
    "function": ("none", "records", "span", "own-span", "records-in-span", "auditel"),
    "langchain": ("none", "records", "openllmetry", "auditel"),
    "mcp": ("none", "records", "auditel"),
}
ROTATE_CALLS = {"function": 1000, "langchain": 400, "mcp": 150}


def _dropping_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=1 << 20))
    return provider


def _records_pair() -> None:
    """The two records ``@auditel.tool`` writes for ``add(1, 2)``, with the same attributes (a call id that is
    also the correlation id, the tool type, the outcome): the budget's durable emits are of the records a
    tool call has to write. (Until issue 16's third round they carried neither id nor the type: ~15% fewer
    instructions per record, which made the budget smaller than the records it stands for.)"""
    import auditel
    from auditel.record.ids import new_record_id

    cid = new_record_id()
    auditel.tool_call(
        "add", phase="intent", call_id=cid, arguments={"a": 1, "b": 2}, tool_type="function", correlation_id=cid
    )
    auditel.tool_call(
        "add",
        phase="outcome",
        call_id=cid,
        result=3,
        outcome="success",
        duration_ms=0.042,
        tool_type="function",
        correlation_id=cid,
    )


def rotate_worker(scenario: str, calls: int, blocks: int) -> dict[str, Any]:
    """Caller-thread CPU µs per call, one list per configuration (a value per block)."""
    import gc
    import warnings

    import auditel

    warnings.simplefilter("ignore")
    _setup_tracing()
    peers = _dropping_provider()
    tmp = tempfile.mkdtemp(prefix="auditel-bench-")
    outbox = os.path.join(tmp, "outbox.db")
    auditel.configure(outbox=outbox)
    configured = [True]
    leftovers: dict[str, int] = {}

    def ensure_auditel(on: bool) -> None:  # MCP's native spans would be bridged while auditel runs
        if on != configured[0]:
            auditel.configure(outbox=outbox) if on else auditel.shutdown()
            configured[0] = on

    nothing = (lambda: None, lambda: None)
    switches: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {"none": nothing, "records": nothing}
    if scenario == "function":
        from opentelemetry import trace

        from auditel.instrumentation.base import tracer as auditel_tracer

        def add(a: int, b: int) -> int:
            return a + b

        audited = auditel.tool("add")(add)
        tracer = peers.get_tracer("bench")
        attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "add"}

        def spanned(a: int, b: int) -> int:
            with tracer.start_as_current_span("execute_tool add", attributes=attrs):
                return add(a, b)

        def in_own_span(body: Callable[[], Any]) -> Any:
            with auditel_tracer().start_as_current_span("execute_tool add", attributes=attrs):
                return body()

        del trace
        run = {
            "none": lambda: add(1, 2),
            "span": lambda: spanned(1, 2),
            "own-span": lambda: in_own_span(lambda: add(1, 2)),
            "records-in-span": lambda: in_own_span(_records_pair),
            "auditel": lambda: audited(1, 2),
        }
        switches.update({c: nothing for c in run})
    elif scenario == "langchain":
        from langchain_core.callbacks.base import BaseCallbackManager
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        plain_init = BaseCallbackManager.__init__
        invoke = _langchain_call("none")
        run = {"none": invoke, "openllmetry": invoke, "auditel": invoke}
        llmetry = LangchainInstrumentor()

        def llmetry_off() -> None:
            llmetry.uninstrument()
            if BaseCallbackManager.__init__ is not plain_init:  # OpenLLMetry leaves its wrapper on
                BaseCallbackManager.__init__ = plain_init  # type: ignore[method-assign]
                leftovers["openllmetry"] = leftovers.get("openllmetry", 0) + 1

        switches.update(
            openllmetry=(lambda: llmetry.instrument(tracer_provider=peers), llmetry_off),
            auditel=(lambda: auditel.instrument("langchain"), lambda: auditel.uninstrument("langchain")),
        )
    else:
        run = {}
        switches.update(
            none=(lambda: ensure_auditel(False), lambda: ensure_auditel(True)),
            auditel=(lambda: auditel.instrument("mcp"), lambda: auditel.uninstrument("mcp")),
        )
    run["records"] = _records_pair

    def time_block(config: str) -> float:
        if scenario != "mcp" or config == "records":
            call = run[config]
            for _ in range(20):
                call()
            gc.collect()
            t0 = time.thread_time_ns()
            for _ in range(calls):
                call()
            return (time.thread_time_ns() - t0) / calls / 1000

        async def timed(client: Any) -> float:
            gc.collect()
            t0 = time.thread_time_ns()
            for _ in range(calls):
                await client.call_tool("add", MCP_ARGS)
            return (time.thread_time_ns() - t0) / calls / 1000

        return float(run_mcp_client(20, timed))

    configs = ROTATE[scenario]
    samples: dict[str, list[float]] = {c: [] for c in configs}
    records: dict[str, float] = {}
    for block in range(blocks):
        k = block % len(configs)
        for config in configs[k:] + configs[:k]:
            on, off = switches[config]
            on()
            before = auditel.status().get("records_total", 0) if configured[0] else 0
            samples[config].append(time_block(config))
            if configured[0]:
                records[config] = (auditel.status()["records_total"] - before) / (calls + 20)
            off()
            if scenario == "langchain" and BaseCallbackManager.__init__ is not plain_init:
                raise SystemExit(f"{config}: uninstrument left a wrapper on BaseCallbackManager.__init__")
    status = auditel.status()
    assert not status["errors"], status["errors"]
    auditel.shutdown()
    return {"samples": samples, "records": records, "leftovers": leftovers}


def _rotate_main(args: argparse.Namespace) -> None:
    variants = [v.split("=", 1) for v in args.variant] or [["current", ""]]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "TRACELOOP_"))}
    env["TRACELOOP_TELEMETRY"] = "false"
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):  # variants alternate inside each round: drift spreads over all of them
        for scenario in ROTATE:
            for name, src in variants:
                venv = dict(env)
                if src:
                    venv["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
                calls = ROTATE_CALLS[scenario] // (5 if args.quick else 1)
                proc = subprocess.run(
                    [sys.executable, __file__, "--rotate-worker", scenario, "--calls", str(calls),
                     "--blocks", str(args.blocks)],
                    capture_output=True, text=True, env=venv,
                )
                if proc.returncode != 0:
                    raise SystemExit(f"{scenario} [{name}] failed:\n{proc.stderr[-2000:]}")
                runs.setdefault((scenario, name), []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.rounds} rounds x {args.blocks} blocks per"
          f" scenario, load average {load:.1f} at the end; caller-thread CPU µs per call (median over blocks,"
          " then over rounds)\n")
    print(f"{'variant':<10} {'scenario':<10} {'auditel added':>14} {'records':>8} {'one emit':>9} {'span cost':>10}"
          f" {'(from)':<13} {'budget':>8} {'ratio':>7}")
    for scenario in ROTATE:
        for name, _src in variants:
            rs = runs[(scenario, name)]

            def med(config: str, rs: list[dict[str, Any]] = rs) -> float:
                return statistics.median(statistics.median(r["samples"][config]) for r in rs)

            none = med("none")
            per_record = med("records") / 2
            n_records = rs[-1]["records"].get("auditel", 0.0)
            if scenario == "function":
                source, peer = "span", med("span") - none
            elif scenario == "langchain":
                source, peer = "openllmetry", med("openllmetry") - none
            else:
                source, peer = "native spans", 0.0  # the MCP SDK's own spans already run in "none"
            added = med("auditel") - none
            budget = n_records * per_record + max(peer, 0.0)
            print(f"{name:<10} {scenario:<10} {added:14.1f} {n_records:8.1f} {per_record:9.1f} {peer:10.1f}"
                  f" {source:<13} {budget:8.1f} {added / budget:6.2f}x")
    print("\nwhere a plain @auditel.tool call's added time goes (µs per call):")
    print(f"{'variant':<10} {'two records':>12} {'auditel span':>13} {'records in span':>16} {'decorator':>10}"
          f" {'sum':>7} {'auditel added':>14}")
    for name, _src in variants:
        rs = runs[("function", name)]

        def fmed(config: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(statistics.median(r["samples"][config]) for r in rs)

        none, pair, span = fmed("none"), fmed("records"), fmed("own-span") - fmed("none")
        in_span = fmed("records-in-span") - fmed("own-span") - pair  # span events + trace context on the records
        decorator = fmed("auditel") - fmed("records-in-span")  # arguments, scope, ids, outcome bookkeeping
        print(f"{name:<10} {pair:12.1f} {span:13.1f} {in_span:+16.1f} {decorator:10.1f}"
              f" {pair + span + in_span + decorator:7.1f} {fmed('auditel') - none:14.1f}")
    for (scenario, name), rs in runs.items():
        for who, n in rs[-1].get("leftovers", {}).items():
            print(f"  note [{name}] {scenario}: {who}'s uninstrument() left a wrapper on BaseCallbackManager.__init__"
                  f" ({n} times; removed by hand after each of its blocks)")
    print("\nper configuration (µs per call, caller-thread CPU):")
    for (scenario, name), rs in runs.items():
        cells = "  ".join(
            f"{c} {statistics.median(statistics.median(r['samples'][c]) for r in rs):.1f}" for c in ROTATE[scenario]
        )
        print(f"  {name:<10} {scenario:<10} {cells}")


# --- driver --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls (smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", nargs=2, metavar=("SCENARIO", "CONFIG"), help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--rotate", action="store_true",
                        help="every configuration of a scenario in one process, block by block (steadier)")
    parser.add_argument("--rounds", type=int, default=3, help="--rotate: processes per scenario and variant")
    parser.add_argument("--blocks", type=int, default=8, help="--rotate: blocks per configuration in each process")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=SRC_DIR",
                        help="--rotate: also run with SRC_DIR first on PYTHONPATH (repeatable; before/after)")
    parser.add_argument("--rotate-worker", metavar="SCENARIO", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.calls, args.repeats)))
        return
    if args.rotate_worker:
        print(json.dumps(rotate_worker(args.rotate_worker, args.calls, args.blocks)))
        return
    if args.rotate:
        _rotate_main(args)
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
