"""The viewer and the report in a real browser (Debian's chromium, headless) over an outbox written by
`auditel demo`: the sessions list, a session's timeline, filters, an integrity problem planted in the
SQLite file behind the page's back, and hostile text that must render as text and run nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from ui_support import (
    AUDITEL,
    HOSTILE,
    HOSTILE_IMG,
    browser,
    clean_env,
    copy_outbox,
    make_demo_outbox,
    session_rows,
    tamper,
    ui_server,
    wait_ready,
    wait_until,
)


@pytest.fixture(scope="module")
def demo_outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_outbox(tmp_path_factory.mktemp("demo"))


def open_demo_session(page: Any) -> None:
    page.click("#sessions tbody tr[data-key]:has-text('report-assistant')")
    page.wait_for_selector(".trow")


def check_sessions_and_timeline(page: Any) -> None:
    rows = session_rows(page)
    assert len(rows) == 2, rows
    demo = [r for r in rows if "report-assistant" in r]
    assert demo, rows
    # start, duration, agent, session, records, model calls 4, tool calls 3, denials 1, failures 0
    cells = demo[0].split("\t")
    assert cells[5:9] == ["4", "3", "1", "0"], cells
    open_demo_session(page)
    kinds = page.eval_on_selector_all(".trow", "rs => rs.map(r => r.getAttribute('data-kind'))")
    assert kinds.count("model_call") == 4
    labels = page.eval_on_selector_all(".trow", "rs => rs.map(r => r.querySelector('.label').innerText)")
    text = "\n".join(labels)
    for expected in ("tool search_documents → success", "tool read_file → success", "tool send_email → denied"):
        assert expected in text, text
    denied = page.eval_on_selector_all(".trow.denied", "rs => rs.map(r => r.getAttribute('data-kind'))")
    assert "policy_decision" in denied and "tool_call" in denied, denied
    # the policy decision sits inside its tool call (nested one level deeper)
    depth = page.eval_on_selector_all(
        ".trow", "rs => rs.map(r => [r.getAttribute('data-kind'), r.querySelector('.label').style.paddingLeft])"
    )
    tool_depth = [d for k, d in depth if k == "tool_call"]
    policy_depth = [d for k, d in depth if k == "policy_decision"]
    assert policy_depth and all(p != t for p, t in zip(policy_depth, tool_depth, strict=False)), depth
    # click the denial: every attribute of the decision record, digests marked as digests
    page.click(".trow.denied[data-kind='policy_decision']")
    detail = page.inner_text("#detail")
    assert "audit.policy.verdict" in detail and "deny" in detail and "recipient outside the organisation" in detail
    page.click(".trow[data-kind='tool_call']:has-text('search_documents')")
    assert "digest — not the content" in page.inner_text("#detail")
    # redacted values show as redacted
    page.click(".trow[data-kind='network_access']")
    detail = page.inner_text("#detail")
    assert "[REDACTED:signed_url]" in detail and "redacted" in detail


def check_filter(page: Any) -> None:
    assert len(session_rows(page)) == 2
    page.select_option("select[name=verdict]", "deny")
    wait_until(lambda: len(session_rows(page)) == 1, 10)
    rows = session_rows(page)
    assert len(rows) == 1 and "report-assistant" in rows[0], rows
    page.select_option("select[name=verdict]", "")
    page.select_option("select[name=outcome]", "failure")
    wait_until(lambda: len(session_rows(page)) == 1 and "report-assistant" not in session_rows(page)[0], 10)
    assert HOSTILE in session_rows(page)[0]
    page.fill("input[name=since]", "1d")
    page.dispatch_event("input[name=since]", "change")
    wait_until(lambda: len(session_rows(page)) == 1, 10)
    page.fill("input[name=until]", "2020-01-01")
    page.dispatch_event("input[name=until]", "change")
    wait_until(lambda: not session_rows(page), 10)
    assert not session_rows(page)
    assert "No sessions match" in page.inner_text("#sessions")
    page.click("button[type=reset]")
    wait_until(lambda: len(session_rows(page)) == 2, 10)


def check_hostile_text(page: Any, scripts_expected: int) -> None:
    rows = session_rows(page)
    assert any(HOSTILE in r for r in rows), rows
    page.click(f"#sessions tbody tr[data-key]:has-text('{HOSTILE}')")
    page.wait_for_selector(".trow.failure")
    labels = page.inner_text("#timeline")
    assert HOSTILE_IMG in labels, labels
    tool_rows = page.eval_on_selector_all(".trow[data-kind='tool_call']", "rs => rs.length")
    assert tool_rows == 1  # intent and outcome (paired by the tool call id) are one row
    page.click(".trow.failure[data-kind='tool_call']")
    detail = page.inner_text("#detail")
    assert HOSTILE in detail and HOSTILE_IMG in detail
    page.wait_for_timeout(300)
    assert page.dialogs == [], page.dialogs
    assert page.eval_on_selector_all("script", "s => s.length") == scripts_expected
    assert page.eval_on_selector_all("img", "s => s.length") == 0
    assert page.errors == [], page.errors


def check_integrity_problem(page: Any, rid: int) -> None:
    wait_until(lambda: "Problems found" in page.inner_text("#integrity-headline"), 30)
    assert "Problems found" in page.inner_text("#integrity-headline")
    panel = page.inner_text("#integrity")
    assert "changed after it was written" in panel, panel
    page.click("#integrity .problem a")
    page.wait_for_selector(".trow.integrity")
    marked = page.eval_on_selector_all(".trow.integrity", "rs => rs.map(r => r.getAttribute('data-rids'))")
    assert marked == [str(rid)], marked
    card = page.inner_text(f".record[data-rid='{rid}']")
    assert "Integrity problem" in card


def test_live_viewer(demo_outbox: Path, tmp_path: Path) -> None:
    with ui_server(demo_outbox, tmp_path) as url, browser() as page:
        page.goto(url)
        wait_ready(page)
        wait_until(lambda: "Intact" in page.inner_text("#integrity-headline"), 30)
        assert "Intact" in page.inner_text("#integrity-headline")
        assert "Pending" in page.inner_text("#delivery")
        check_sessions_and_timeline(page)
        check_filter(page)
        check_hostile_text(page, scripts_expected=1)


def test_live_viewer_follows_an_app_that_keeps_recording(demo_outbox: Path, tmp_path: Path) -> None:
    outbox = copy_outbox(demo_outbox, tmp_path)
    with ui_server(outbox, tmp_path) as url, browser() as page:
        page.goto(url)
        wait_ready(page)
        assert len(session_rows(page)) == 2
        env = clean_env(outbox, tmp_path) | {"AUDITEL_ENABLED": "true", "AUDITEL_AGENT_NAME": "late-agent"}
        done = subprocess.run([*AUDITEL, "demo"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr  # the app recorded while the viewer had the file open
        wait_until(lambda: len(session_rows(page)) == 3, 20)
        assert "late-agent" in session_rows(page)[0]
        wait_until(
            lambda: "Intact" in page.inner_text("#integrity-headline") and "3 stream" in page.inner_text("#integrity"),
            30,
        )
        assert "3 stream(s)" in page.inner_text("#integrity-headline")


def test_live_viewer_shows_a_record_edited_behind_its_back(demo_outbox: Path, tmp_path: Path) -> None:
    outbox = copy_outbox(demo_outbox, tmp_path)
    with ui_server(outbox, tmp_path) as url, browser() as page:
        page.goto(url)
        wait_ready(page)
        wait_until(lambda: "Intact" in page.inner_text("#integrity-headline"), 30)
        assert "Intact" in page.inner_text("#integrity-headline")
        open_demo_session(page)
        # the page is open and has said "intact"; now someone edits a model call's token count in the file
        rid = tamper(outbox, seq=7, old='"gen_ai.usage.input_tokens":220', new='"gen_ai.usage.input_tokens":22')
        check_integrity_problem(page, rid)  # no reload: the page re-checks on its own


def write_report(outbox: Path, home: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUDITEL, "report", "--out", str(out), *extra],
        env=clean_env(outbox, home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_report_offline_from_disk(demo_outbox: Path, tmp_path: Path) -> None:
    out = tmp_path / "trail.html"
    done = write_report(demo_outbox, tmp_path, out)
    assert done.returncode == 0, done.stderr
    assert (out.stat().st_mode & 0o777) == 0o600
    html = out.read_text()
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html.replace(
        "https://api.example.com", ""
    )  # the demo's recorded URL is data, not a resource
    with browser(offline=True) as page:
        page.goto(out.as_uri())
        wait_ready(page)
        assert "Intact" in page.inner_text("#integrity-headline")
        assert "ed25519:" in page.inner_text("#source")  # the public key's id
        check_sessions_and_timeline(page)
        check_filter(page)
        check_hostile_text(page, scripts_expected=2)  # the data block and the page's script
        assert page.blocked == [], page.blocked


def test_report_of_a_tampered_outbox_marks_the_record(demo_outbox: Path, tmp_path: Path) -> None:
    outbox = copy_outbox(demo_outbox, tmp_path)
    rid = tamper(outbox, seq=7, old='"gen_ai.usage.input_tokens":220', new='"gen_ai.usage.input_tokens":22')
    out = tmp_path / "trail.html"
    done = write_report(outbox, tmp_path, out)
    assert done.returncode == 0 and "PROBLEMS FOUND" in done.stdout, (done.stdout, done.stderr)
    with browser(offline=True) as page:
        page.goto(out.as_uri())
        wait_ready(page)
        check_integrity_problem(page, rid)
        assert page.blocked == [] and page.dialogs == []
