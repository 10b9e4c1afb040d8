"""Start-up time added by auditel's zero-code start (issue 12 item 5: goal <= 0.3 s added).

Commands, each run N times in a fresh process (wall clock from spawn to exit, median):
  plain            python -c pass
  auditel-run      auditel run -- python -c pass   (configure, arm every installed framework's instrumentation)
  auditel-run-off  AUDITEL_ENABLED=false auditel run -- python -c pass   (the bootstrap only)
  import-auditel   python -c "import auditel"
  instrument       python -c "import auditel; auditel.configure(); auditel.instrument()"  (the explicit,
                   eager API: imports auditel's code for every installed framework, not the frameworks)
  app-imports-openai  python -c "import openai" vs the same under auditel run (what the app pays
                   anyway for its framework, and what auditel adds on top of it)

Every framework extra is installed in the test/bench environment (openai, anthropic, mcp,
langchain, openai-agents), so this measures the worst case a user of ``auditel[all]`` sees. Each
"(new outbox)" run gets a new outbox in a new temporary directory; the others share one. Run: ``.venv/bin/python bench/bench_startup.py [-n 15]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PY = sys.executable


def _env(tmp: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["AUDITEL_OUTBOX"] = os.path.join(tmp, "outbox.db")
    env["XDG_DATA_HOME"] = tmp
    env.update(extra)
    return env


# Commands whose name ends in "(new outbox)" get a new, empty directory every run (the first run of
# a program: schema and keys are created); the others reuse one outbox, as every later run does.
COMMANDS: dict[str, tuple[list[str], dict[str, str]]] = {
    "plain": ([PY, "-c", "pass"], {}),
    "import-auditel": ([PY, "-c", "import auditel"], {}),
    "instrument": ([PY, "-c", "import auditel; auditel.configure(); auditel.instrument()"], {}),
    "auditel-run-off": ([str(BIN / "auditel"), "run", "--", PY, "-c", "pass"], {"AUDITEL_ENABLED": "false"}),
    "auditel-run": ([str(BIN / "auditel"), "run", "--", PY, "-c", "pass"], {}),
    "auditel-run (new outbox)": ([str(BIN / "auditel"), "run", "--", PY, "-c", "pass"], {}),
    "plain: import openai": ([PY, "-c", "import openai"], {}),
    "auditel-run: import openai": ([str(BIN / "auditel"), "run", "--", PY, "-c", "import openai"], {}),
}


_WARM = tempfile.TemporaryDirectory()  # the outbox every run but the "(new outbox)" ones shares


def time_once(cmd: list[str], extra: dict[str, str], new: bool = False) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(tmp if new else _WARM.name, **extra)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
        return elapsed


BREAKDOWN = r"""
import json, time
t0 = time.perf_counter()
from auditel import runtime
t1 = time.perf_counter()
from auditel.zero_code import _configure_sdk_if_requested, configure_tracing, start_auditel
start_auditel()
t2 = time.perf_counter()
configure_tracing(_configure_sdk_if_requested)  # what the zero-code start adds when no provider is set
t3 = time.perf_counter()
from auditel.instrumentation import arm
arm()
t4 = time.perf_counter()
runtime.shutdown()
t5 = time.perf_counter()
print(json.dumps({"import auditel.runtime": t1 - t0, "configure()": t2 - t1, "tracing set-up": t3 - t2,
                  "arm instrumentations": t4 - t3, "shutdown() at exit": t5 - t4}))
"""


def breakdown(n: int) -> dict[str, float]:
    """Where the added time goes, measured inside one process (median of n)."""
    import json

    runs: list[dict[str, float]] = []
    for _ in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [PY, "-c", BREAKDOWN], env=_env(tmp, AUDITEL_ENABLED="true"), capture_output=True, text=True, check=True
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="runs per command (median reported)")
    args = parser.parse_args()
    for cmd, extra in COMMANDS.values():  # warm the file cache once
        time_once(cmd, extra)
    medians: dict[str, float] = {}
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.n):  # interleaved, so that machine noise spreads over every command
        for name, (cmd, extra) in COMMANDS.items():
            samples[name].append(time_once(cmd, extra, new=name.endswith("(new outbox)")))
    for name, values in samples.items():
        medians[name] = statistics.median(values)
    base = {name: medians["plain: import openai"] if "import openai" in name else medians["plain"] for name in COMMANDS}
    print(f"python {sys.version.split()[0]}, {args.n} runs each, median wall-clock seconds")
    print(f"{'command':<28} {'median s':>9} {'added s':>9} {'min s':>8} {'max s':>8}")
    for name, values in samples.items():
        print(
            f"{name:<28} {medians[name]:>9.3f} {medians[name] - base[name]:>+9.3f} {min(values):>8.3f} {max(values):>8.3f}"
        )
    print("\nwhere the time goes (inside one process, median seconds)")
    for step, seconds in breakdown(args.n).items():
        print(f"  {step:<26} {seconds:>9.3f}")


if __name__ == "__main__":
    main()
