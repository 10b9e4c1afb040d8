"""``auditel run`` builds a parser with the ``run`` sub-command alone: the parent process, which only
checks the settings and execs the command, does not import the other commands' modules (and what
they pull in: the shipper, the integrity verifier, the OTLP encoders)."""

from __future__ import annotations

import json
import subprocess
import sys

from auditel.cli import _command_of, build_parser

OTHER_COMMANDS = ("auditel.cli.verify_cmd", "auditel.cli.sync_cmd", "auditel.cli.export_cmd", "auditel.cli.status_cmd")


def test_command_of_skips_the_global_outbox() -> None:
    assert _command_of(["run", "--", "python"]) == "run"
    assert _command_of(["--outbox", "x.db", "run", "--", "python"]) == "run"
    assert _command_of(["--outbox=x.db", "run"]) == "run"
    assert _command_of(["--version"]) is None
    assert _command_of(["-h"]) is None
    assert _command_of([]) is None
    assert _command_of(["status"]) == "status"


def test_run_parser_has_run_alone_and_keeps_the_global_outbox() -> None:
    parser = build_parser("auditel.cli.run_cmd")
    args = parser.parse_args(["--outbox", "o.db", "run", "--", "python", "-c", "pass"])
    assert args.outbox == "o.db" and args.command[-3:] == ["python", "-c", "pass"]
    full = build_parser()
    assert full.parse_args(["status"]).command == "status"


def test_auditel_run_imports_no_other_command(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import sys, json\n"
        "from auditel.cli import main\n"
        "import os\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith('auditel.cli.'))\n"
        "os.execve = lambda *a: (print(json.dumps(loaded())), sys.exit(0))\n"
        f"main(['--outbox', {str(tmp_path / 'o.db')!r}, 'run', '--', {sys.executable!r}, '-c', 'pass'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "AUDITEL_ENABLED": "false"})
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "auditel.cli.run_cmd" in loaded
    assert not [m for m in OTHER_COMMANDS if m in loaded], loaded
