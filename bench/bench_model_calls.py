"""Per-call overhead of model-call instrumentation on a local chat completion.

One run compares, each in its own Python process (instrumentations patch the same SDK methods
and a global TracerProvider cannot be replaced, so a fresh process per configuration is the fair
set-up; all share one venv, their dependencies install side by side):

* ``uninstrumented``: the openai client alone;
* ``auditel``: auditel (span + durable ``auditel.model_call`` record committed to SQLite per call);
* ``otel-genai``: the official ``opentelemetry-instrumentation-genai-openai``, its span alone;
* ``otel-genai-event``: the same with ``OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT=true`` (content off, the
  default ``NO_CONTENT`` capture mode): its span *and* its ``gen_ai.client.inference.operation.details``
  log event per call, through the stock ``BatchLogRecordProcessor`` + OTLP exporter — like with like,
  since auditel writes a span and an audit record (the goal: auditel ≤ this; stretch: ≤ span alone);
* ``openllmetry``: OpenLLMetry's ``opentelemetry-instrumentation-openai`` (content capture off,
  like the others' defaults).

Every instrumented configuration has a stock OTel SDK pipeline: TracerProvider and LoggerProvider
with batch processors exporting OTLP/HTTP to a local rotel collector (``tests/otlp_harness.py``).
The model is ``tests/fake_llm_server.py`` in the parent process. Non-streaming and streaming
(4 content chunks + finish) chat completions, interleaved in alternating blocks within each worker;
several worker processes per configuration, the configurations interleaved round by round (order
rotated each round) so that drift and noise on the machine spread over all of them.

Reported, each as the median over rounds, with the time added over ``uninstrumented`` and the ratio:

* caller-thread CPU µs per call (median of per-call ``thread_time_ns``): what the instrumentation
  costs the calling thread; the steadiest figure on a shared machine;
* wall µs per call (median of per-call samples);
* process CPU µs per call (mean, all threads: includes the batch exporters and auditel's worker);
* paired: in each instrumented worker the same SDK method unwrapped (wrapt's ``__wrapped__``) is
  timed too, interleaved block by block with the instrumented calls; the per-process difference
  (caller-thread CPU and wall) does not depend on how busy the machine was during that worker.

    python bench/bench_model_calls.py [--calls 400] [--rounds 5] [--blocks 8]

Before/after in one run: ``--variant NAME=SRC_DIR`` (repeatable) runs the same-process rotations once
per variant, alternately, with ``SRC_DIR`` first on ``PYTHONPATH`` (e.g. ``git archive main src | tar -x
-C /tmp/before`` then ``--variant before=/tmp/before/src --variant after=src``); ``--rounds 0`` skips
the per-configuration processes and prints the rotation tables alone.
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

MODES = ("uninstrumented", "auditel", "otel-genai-event", "otel-genai", "openllmetry")
MESSAGES = [{"role": "user", "content": "What is the answer?"}]
EMIT_EVENT = "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"


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
    elif mode in ("otel-genai", "otel-genai-event"):
        os.environ[EMIT_EVENT] = "true" if mode == "otel-genai-event" else "false"
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()
    elif mode == "openllmetry":
        os.environ["TRACELOOP_TRACE_CONTENT"] = "false"
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()


KINDS = ("nonstream", "stream")


def _time_blocks(calls_by_kind: dict[str, Any], calls: int, blocks: int) -> dict[str, float]:
    """Per-call figures for each kind, the kinds interleaved in ``blocks`` alternating blocks.

    Kept per call: wall time and CPU time of the calling thread (``thread_time_ns``: what the
    instrumentation costs the caller, undisturbed by other processes and by the exporter threads).
    Kept per block: process CPU (all threads, incl. batch exporters and auditel's worker).
    Reported: medians of the per-call samples and the mean process CPU per call.
    """
    for fn in calls_by_kind.values():  # warm-up: imports, connection pool, caches
        for _ in range(max(20, calls // 10)):
            fn()
    wall: dict[str, list[int]] = {k: [] for k in calls_by_kind}
    thread: dict[str, list[int]] = {k: [] for k in calls_by_kind}
    process_ns: dict[str, int] = {k: 0 for k in calls_by_kind}
    per_block = max(1, calls // blocks)
    perf, thread_ns, process = time.perf_counter_ns, time.thread_time_ns, time.process_time_ns
    for block in range(blocks):
        order = list(calls_by_kind) if block % 2 == 0 else list(reversed(list(calls_by_kind)))
        for kind in order:
            fn, walls, threads = calls_by_kind[kind], wall[kind], thread[kind]
            p0 = process()
            for _ in range(per_block):
                t0, c0 = perf(), thread_ns()
                fn()
                c1, t1 = thread_ns(), perf()
                walls.append(t1 - t0)
                threads.append(c1 - c0)
            process_ns[kind] += process() - p0
    out: dict[str, float] = {}
    for kind in calls_by_kind:
        out[f"{kind}_us"] = statistics.median(wall[kind]) / 1000.0
        out[f"{kind}_thread_us"] = statistics.median(thread[kind]) / 1000.0
        out[f"{kind}_cpu_us"] = process_ns[kind] / len(wall[kind]) / 1000.0
    return out


def worker(mode: str, base_url: str, endpoint: str, calls_per_kind: int, blocks: int) -> dict[str, float]:
    import gc
    import warnings

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as workdir:
        _setup(mode, endpoint, workdir)
        import openai

        client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)

        def calls(create: Any) -> dict[str, Any]:
            def plain() -> None:
                create(model="gpt-4o", messages=MESSAGES)

            def streamed() -> None:
                for _ in create(model="gpt-4o", messages=MESSAGES, stream=True):
                    pass

            return {"nonstream": plain, "stream": streamed}

        create = client.chat.completions.create
        # Paired baseline: the same SDK method without the instrumentation's wrapper (wrapt keeps the
        # original as __wrapped__), timed in this process, interleaved with the instrumented calls:
        # machine load that comes and goes hits both alike, so their difference is steady.
        original = getattr(create, "__wrapped__", None)
        instrumented = calls(create)
        unwrapped = calls(original) if mode != "uninstrumented" and original is not None else {}
        timed: dict[str, Any] = {}
        for kind in KINDS:  # each kind next to its paired baseline
            timed[kind] = instrumented[kind]
            if kind in unwrapped:
                timed[f"{kind}_raw"] = unwrapped[kind]
        gc.collect()
        gc.freeze()  # set-up garbage out of the collector's way: every mode times the same calls
        out = _time_blocks(timed, calls_per_kind, blocks)
        for kind in KINDS:
            for suffix in ("_us", "_thread_us"):
                raw = out.pop(f"{kind}_raw{suffix}", None)
                out[f"{kind}_paired{suffix}"] = out[kind + suffix] - raw if raw is not None else 0.0
                # relative to the unwrapped call: steadier still when the whole machine slows down
                out[f"{kind}_paired{suffix[:-3]}_pct"] = 100.0 * out[f"{kind}_paired{suffix}"] / raw if raw else 0.0
            out.pop(f"{kind}_raw_cpu_us", None)
        if mode == "auditel":
            import auditel

            out["records"] = auditel.status()["records_total"]
            auditel.shutdown()
        return out


def rotating_worker(base_url: str, endpoint: str, calls_per_kind: int, blocks: int) -> dict[str, float]:
    """All configurations in ONE process, switched block by block (instrument, time, uninstrument).

    Separate processes differ in memory layout, and the instrumentation's cost is dominated by cache
    misses after the SDK call, so a configuration can gain or lose ~20% from its process alone. Here
    every configuration shares the process, the caches' luck and the machine's moments; the unwrapped
    blocks are the baseline. Each switch is checked: after uninstrumenting, the SDK method must be the
    original again (else the run stops).
    """
    import gc
    import warnings

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as workdir:
        _stock_pipeline(endpoint)
        import auditel
        import openai
        from openai.resources.chat.completions import Completions

        # auditel stays configured during the other vendors' blocks: without this its span bridge would
        # turn their GenAI spans into durable records and charge them for it
        os.environ["AUDITEL_SPAN_BRIDGE"] = "false"
        auditel.configure(outbox=os.path.join(workdir, "outbox.db"))
        os.environ["TRACELOOP_TRACE_CONTENT"] = "false"
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as GenAIInstrumentor
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor

        genai, llmetry = GenAIInstrumentor(), OpenLLMetryInstrumentor()
        switches: dict[str, tuple[Any, Any]] = {
            "uninstrumented": (lambda: None, lambda: None),
            "auditel": (lambda: auditel.instrument("openai"), lambda: auditel.uninstrument("openai")),
            "otel-genai-event": (lambda: (os.environ.__setitem__(EMIT_EVENT, "true"), genai.instrument()),
                                 lambda: (genai.uninstrument(), os.environ.__setitem__(EMIT_EVENT, "false"))),
            "otel-genai": (lambda: (os.environ.__setitem__(EMIT_EVENT, "false"), genai.instrument()), genai.uninstrument),
            "openllmetry": (llmetry.instrument, llmetry.uninstrument),
        }
        original = Completions.__dict__["create"]
        leftovers: dict[str, int] = {}

        def restore_by_hand(mode: str) -> None:
            # OpenLLMetry 0.62's uninstrument() leaves one of its two wrappers on Completions.create
            # (it wraps the method twice); peel what is left so the next block starts unwrapped
            while Completions.__dict__["create"] is not original and hasattr(Completions.__dict__["create"], "__wrapped__"):
                Completions.create = Completions.__dict__["create"].__wrapped__
                leftovers[mode] = leftovers.get(mode, 0) + 1
        client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)

        def plain() -> None:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

        def streamed() -> None:
            for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
                pass

        kinds = {"nonstream": plain, "stream": streamed}
        thread: dict[str, list[int]] = {f"{m}_{k}": [] for m in switches for k in kinds}
        per_block = max(1, calls_per_kind // blocks)
        thread_ns = time.thread_time_ns
        gc.collect()
        gc.freeze()
        modes = list(switches)
        for block in range(blocks):
            shift = block % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                on, off = switches[mode]
                on()
                if (Completions.__dict__["create"] is original) != (mode == "uninstrumented"):
                    sys.exit(f"switching to {mode} did not (un)wrap Completions.create")
                for kind, fn in kinds.items():
                    for _ in range(5):  # warm-up after the switch
                        fn()
                    samples = thread[f"{mode}_{kind}"]
                    for _ in range(per_block):
                        c0 = thread_ns()
                        fn()
                        samples.append(thread_ns() - c0)
                off()
                restore_by_hand(mode)
                if Completions.__dict__["create"] is not original:
                    sys.exit(f"{mode} did not restore Completions.create")
        out = {key: statistics.median(v) / 1000.0 for key, v in thread.items()}
        out.update({f"leftover_wrappers_{mode}": float(n) for mode, n in leftovers.items()})
        auditel.shutdown()
        return out


# --- orchestrator ----------------------------------------------------------------------------------------------
METRICS = (
    ("_thread_us", "caller-thread CPU µs per call (median; the instrumentation's cost to the caller)"),
    ("_us", "wall µs per call (median)"),
    ("_cpu_us", "process CPU µs per call (mean; all threads, incl. batch exporters and auditel's worker)"),
)


def _run_worker(mode: str, llm_url: str, endpoint: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", mode, "--base-url", llm_url, "--endpoint", endpoint,
           "--calls", str(args.calls), "--blocks", str(args.blocks if mode != "rotating" else args.rotation_blocks)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        sys.exit(f"{mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print_tables(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    print(f"\nchat completion against a local server: {args.calls} calls per kind x {args.rounds} rounds per "
          f"configuration, kinds interleaved in {args.blocks} blocks; figures are medians over rounds")
    added: dict[str, dict[str, float]] = {m: {} for m in MODES}
    for suffix, label in METRICS:
        print(f"\n{label}")
        print(f"{'configuration':16s} {'non-stream':>11s} {'added':>8s} {'ratio':>6s} {'stream':>9s} {'added':>8s} {'ratio':>6s}")
        base_n, base_s = med("uninstrumented", "nonstream" + suffix), med("uninstrumented", "stream" + suffix)
        for mode in MODES:
            n, s = med(mode, "nonstream" + suffix), med(mode, "stream" + suffix)
            added[mode]["nonstream" + suffix] = n - base_n
            added[mode]["stream" + suffix] = s - base_s
            print(f"{mode:16s} {n:11.1f} {n - base_n:8.1f} {n / base_n:6.2f} {s:9.1f} {s - base_s:8.1f} {s / base_s:6.2f}")
    print("\npaired: time added per call, measured against the same SDK method unwrapped, interleaved in the same"
          " process (median over rounds; the steadiest comparison on a busy machine)")
    print(f"{'configuration':16s} {'non-stream CPU':>14s} {'wall':>8s} {'stream CPU':>11s} {'wall':>8s}"
          f"   (in % of the unwrapped call: {'non-stream CPU':>14s} {'stream CPU':>11s})")
    for mode in MODES[1:]:
        for kind in KINDS:
            for suffix in ("_paired_thread_us", "_paired_us", "_paired_thread_pct"):
                added[mode][kind + suffix] = med(mode, kind + suffix)
        a = added[mode]
        print(f"{mode:16s} {a['nonstream_paired_thread_us']:14.1f} {a['nonstream_paired_us']:8.1f}"
              f" {a['stream_paired_thread_us']:11.1f} {a['stream_paired_us']:8.1f}"
              f"   {'':29s} {a['nonstream_paired_thread_pct']:13.1f}% {a['stream_paired_thread_pct']:10.1f}%")
    print("\nauditel's added time vs the official instrumentation with its event on (like with like; goal: ratio"
          " <= 1.00) and vs its span alone (stretch)")
    comparisons = (
        ("_paired_thread_pct", "paired caller-thread CPU %"),
        ("_paired_thread_us", "paired caller-thread CPU"),
        ("_paired_us", "paired wall"),
    )
    comparisons += tuple((suffix, label.split(" per call")[0]) for suffix, label in METRICS)
    for suffix, label in comparisons:
        for kind in KINDS:
            key = kind + suffix
            ours = added["auditel"][key]
            unit = "%" if suffix.endswith("_pct") else "µs"
            for target in ("otel-genai-event", "otel-genai"):
                theirs = added[target][key]
                ratio = ours / theirs if theirs > 0 else float("nan")
                print(f"  {label:28s} {kind:10s} {ours:8.1f} vs {target:16s} {theirs:8.1f} {unit:2s} ({ratio:.2f}x)")
    print(f"auditel committed {results['auditel'][-1].get('records', 0):.0f} records to its outbox in the last round")


def _print_rotations(rotations: list[dict[str, float]], title: str = "") -> None:
    """Added caller-thread CPU per call with every configuration in one process (``rotating_worker``)."""
    def added(mode: str, kind: str) -> float:
        return statistics.median(r[f"{mode}_{kind}"] - r[f"uninstrumented_{kind}"] for r in rotations)

    print(f"\n{title}same process, configurations switched block by block ({len(rotations)} processes; caller-thread CPU µs"
          " per call, median per block set, added over the unwrapped blocks, median over processes)")
    print(f"{'configuration':16s} {'non-stream':>11s} {'added':>8s} {'stream':>9s} {'added':>8s}")
    for mode in MODES:
        n = statistics.median(r[f"{mode}_nonstream"] for r in rotations)
        st = statistics.median(r[f"{mode}_stream"] for r in rotations)
        print(f"{mode:16s} {n:11.1f} {added(mode, 'nonstream'):8.1f} {st:9.1f} {added(mode, 'stream'):8.1f}")
    for mode in MODES:
        left = statistics.median(r.get(f"leftover_wrappers_{mode}", 0.0) for r in rotations)
        if left:
            print(f"  note: {mode}'s uninstrument() left {left:.0f} wrapper(s) on Completions.create over the run"
                  " (removed by hand after each of its blocks)")
    for kind in KINDS:
        ours = added("auditel", kind)
        for target, goal in (("otel-genai-event", "goal"), ("otel-genai", "stretch")):
            theirs = added(target, kind)
            ratio = ours / theirs if theirs > 0 else float("nan")
            print(f"  auditel vs {target:16s} {kind:10s} {ours:8.1f} vs {theirs:8.1f} µs ({ratio:.2f}x; {goal} <= 1.00)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=400, help="timed calls per kind per worker process")
    parser.add_argument("--rounds", type=int, default=5, help="worker processes per configuration")
    parser.add_argument("--blocks", type=int, default=8, help="alternating non-stream/stream blocks per worker")
    parser.add_argument("--rotations", type=int, default=3,
                        help="processes that run every configuration in turn, switched block by block")
    parser.add_argument("--rotation-blocks", type=int, default=16, help="blocks per rotating process")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=SRC_DIR",
                        help="run the rotations once per variant, auditel imported from SRC_DIR (repeatable)")
    parser.add_argument("--worker", choices=MODES + ("rotating",))
    parser.add_argument("--base-url")
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    if args.worker == "rotating":
        print(json.dumps(rotating_worker(args.base_url, args.endpoint, args.calls, args.blocks)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.base_url, args.endpoint, args.calls, args.blocks)))
        return

    from fake_llm_server import FakeLLMServer
    from otlp_harness import CaptureServer, RotelCollector

    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    with FakeLLMServer() as llm, CaptureServer() as capture, RotelCollector(export_to=capture.endpoint) as rotel:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "TRACELOOP_"))}
        for round_no in range(args.rounds):
            # interleaved rounds, the order rotated each round: machine noise and drift spread over all modes
            shift = round_no % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:
                results[mode].append(_run_worker(mode, llm.openai_base_url, rotel.http_endpoint, args, env))
                brief = {k: round(v, 1) for k, v in results[mode][-1].items() if "paired" in k and k.endswith("_us")}
                print(f"round {round_no + 1} {mode:15s} {brief}", file=sys.stderr)
        variants = [tuple(v.split("=", 1)) for v in args.variant] or [("", "")]
        rotations: dict[str, list[dict[str, float]]] = {name: [] for name, _ in variants}
        for n in range(args.rotations):
            for name, src in variants:  # alternately: the machine's moments hit every variant alike
                venv = dict(env)
                if src:
                    paths = [str(Path(src).resolve())] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
                    venv["PYTHONPATH"] = os.pathsep.join(paths)
                rotations[name].append(_run_worker("rotating", llm.openai_base_url, rotel.http_endpoint, args, venv))
                brief = {k: round(v, 1) for k, v in rotations[name][-1].items()}
                print(f"rotation {n + 1} {name} {brief}", file=sys.stderr)
    if args.rounds:
        _print_tables(results, args)
    for name, runs in rotations.items():
        if runs:
            _print_rotations(runs, f"[{name}] " if name else "")


if __name__ == "__main__":
    main()
