"""Re-take the viewer's screenshots in docs/ with headless chromium (not a test):

    .venv/bin/python tests/ui/make_screenshots.py

Records three sessions into a temporary outbox (the demo twice, and a support agent whose refund tool
fails inside an agent run), serves it with `auditel ui` and photographs the sessions list, the demo
session's timeline with its policy denial opened, and the support session's nested timeline."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ui_support import AUDITEL, browser, clean_env, ui_server, wait_ready

DOCS = Path(__file__).resolve().parents[2] / "docs"

SUPPORT_AGENT = """
import time, auditel
auditel.configure(agent_name="support-triage", principal="user:bob@example.com")
auditel.session_start()

@auditel.tool("lookup_ticket")
def lookup_ticket(ticket: str) -> dict:
    time.sleep(0.03)
    return {"status": "open"}

@auditel.tool("refund_payment")
def refund_payment(order: str, amount: float) -> str:
    time.sleep(0.02)
    raise RuntimeError("payments API: 503 Service Unavailable")

def model(step: int, tool: str, args: dict) -> None:
    t0 = time.perf_counter()
    time.sleep(0.05)
    auditel.model_call("gpt-4.1-mini", provider="openai", duration_ms=(time.perf_counter() - t0) * 1000,
                       input_tokens=400 + 100 * step, output_tokens=38,
                       tool_calls=[{"name": tool, "id": f"c{step}", "arguments": args}])

with auditel.audited("agent.run", attributes={"gen_ai.agent.name": "support-triage"}):
    model(1, "lookup_ticket", {"ticket": "T-1042"})
    lookup_ticket("T-1042")
    model(2, "refund_payment", {"order": "A-77", "amount": 42.0})
    try:
        refund_payment("A-77", 42.0)
    except RuntimeError:
        pass
auditel.session_end(outcome="failure")
auditel.shutdown()
"""


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="auditel-shots-"))
    outbox = home / "audit" / "outbox.db"
    env = clean_env(outbox, home)
    renamed = env | {"AUDITEL_AGENT_NAME": "research-agent"}
    subprocess.run([*AUDITEL, "demo"], env=renamed, check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", SUPPORT_AGENT], env=env | {"AUDITEL_ENABLED": "true"}, check=True)
    subprocess.run([*AUDITEL, "demo"], env=env, check=True, capture_output=True)
    top = "document.querySelector('#timeline-section').getBoundingClientRect().top + window.scrollY"
    with ui_server(outbox, home) as url, browser() as page:
        page.goto(url)
        wait_ready(page)
        page.wait_for_function("document.querySelector('#integrity-headline').innerText.startsWith('Intact')")
        page.screenshot(path=str(DOCS / "viewer-sessions.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 520})
        page.click("#sessions tbody tr[data-key]:has-text('report-assistant')")
        page.click(".trow[data-kind='policy_decision'].denied")
        y = page.evaluate(top)
        page.screenshot(path=str(DOCS / "viewer-timeline.png"), full_page=True,
                        clip={"x": 0, "y": y - 8, "width": 1280, "height": 1000})
        page.click("#sessions tbody tr[data-key]:has-text('support-triage')")
        page.click(".trow.failure[data-kind='tool_call']")
        y = page.evaluate(top)
        page.screenshot(path=str(DOCS / "viewer-nesting.png"), full_page=True,
                        clip={"x": 0, "y": y - 8, "width": 1280, "height": 700})
    print(f"wrote {DOCS}/viewer-*.png", file=sys.stderr)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
