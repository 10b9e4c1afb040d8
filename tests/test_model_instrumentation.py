"""Model-call auto-instrumentation against the real openai and anthropic SDKs and a local server.

Every test uses real SDK clients (``base_url`` -> ``tests/fake_llm_server.py`` on 127.0.0.1), a real
SQLite outbox and an SDK TracerProvider with an in-memory exporter.
"""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Any, Iterator

import anthropic
import openai
import pytest
import wrapt

import auditel
from auditel import runtime as auditel_runtime
from fake_llm_server import REPLY_TEXT, TOOL_ARGUMENTS, TOOL_CALL_ID, TOOL_NAME, FakeLLMServer
from genai_support import model_records, model_spans, outbox_bytes, telemetry

PROMPT = "PROMPT-MARKER-91c2 what is the answer?"
SYSTEM = "SYSTEM-MARKER-5d10 be brief"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
ARGS_MARKER = TOOL_ARGUMENTS["city"]
CONTENT_VARS = ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
def exporters() -> Iterator[Any]:
    spans, logs = telemetry()
    spans.clear()
    logs.clear()
    yield spans, logs
    spans.clear()
    logs.clear()


def _start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None = None, emit: str | None = None) -> Path:
    for var in CONTENT_VARS + ("AUDITEL_ENABLED",):
        monkeypatch.delenv(var, raising=False)
    if content is not None:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", content)
    if emit is not None:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", emit)
    auditel_runtime._reset_for_tests()
    outbox = tmp_path / "audit" / "outbox.db"
    auditel.configure(outbox=str(outbox))
    auditel.instrument("openai", "anthropic")
    return outbox


@pytest.fixture
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exporters: Any) -> Iterator[Any]:
    """Start auditel with a fresh outbox; ``audit.restart(content=..., emit=...)`` changes the mode."""

    class Audit:
        outbox = _start(tmp_path, monkeypatch)
        spans, logs = exporters

        def restart(self, content: str | None = None, emit: str | None = None) -> None:
            auditel.uninstrument()
            type(self).outbox = _start(tmp_path / content_dir(content, emit), monkeypatch, content, emit)

        def records(self) -> list[dict[str, Any]]:
            # auditel's own instrumentation's records: spans of other instrumentations (the anthropic
            # SDK's native telemetry, OpenLLMetry's leftover wrappers) are mapped by the span bridge,
            # whose records name their source (tests/spans/)
            return [r for r in model_records(self.outbox) if "audit.source" not in r["attributes"]]

        def spans_(self) -> list[Any]:
            return model_spans(self.spans)

    yield Audit()
    auditel.uninstrument()
    auditel_runtime._reset_for_tests()


def content_dir(content: str | None, emit: str | None) -> str:
    return f"{content or 'default'}-{emit or 'unset'}"


def oai(server: FakeLLMServer, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=2, **kw)


def aoai(server: FakeLLMServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=2)


def ant(server: FakeLLMServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=2)


def aant(server: FakeLLMServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=2)


def attrs(record: dict[str, Any]) -> dict[str, Any]:
    return record["attributes"]


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def assert_linked(record: dict[str, Any], span: Any) -> None:
    """The record carries the model span's ids and appears as an event on it."""
    assert record["trace_id"] == format(span.context.trace_id, "032x")
    assert record["span_id"] == format(span.context.span_id, "016x")
    assert [e.name for e in span.events] == ["auditel.model_call"]


# --- OpenAI chat completions -----------------------------------------------------------------------------
def test_openai_chat_sync_span_and_record(audit: Any, server: FakeLLMServer) -> None:
    result = oai(server).chat.completions.create(
        model="gpt-tools", messages=MESSAGES, temperature=0.2, max_completion_tokens=50, top_p=0.9, stop=["END"], seed=7
    )
    assert isinstance(result, openai.types.chat.ChatCompletion)
    assert result.choices[0].message.tool_calls[0].function.name == TOOL_NAME

    span = only(audit.spans_())
    assert span.name == "chat gpt-tools"
    assert span.kind.name == "CLIENT"
    a = span.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-tools"
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.seed"] == 7
    assert tuple(a["gen_ai.request.stop_sequences"]) == ("END",)
    assert a["gen_ai.response.id"] == "chatcmpl-test-1"
    assert a["gen_ai.response.model"] == "gpt-tools-2026-01-01"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("tool_calls",)
    assert a["gen_ai.usage.input_tokens"] == 21
    assert a["gen_ai.usage.output_tokens"] == 9
    assert a["gen_ai.usage.cache_read.input_tokens"] == 4
    assert a["gen_ai.usage.reasoning.output_tokens"] == 3
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == server.port
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a

    record = only(audit.records())
    r = attrs(record)
    assert r["audit.outcome"] == "success"
    assert r["gen_ai.response.id"] == "chatcmpl-test-1"
    assert r["gen_ai.usage.input_tokens"] == 21 and r["gen_ai.usage.reasoning.output_tokens"] == 3
    assert r["audit.duration_ms"] > 0
    assert r["audit.tool_calls.names"] == [TOOL_NAME]
    assert r["audit.tool_calls.ids"] == [TOOL_CALL_ID]
    assert r["audit.tool_calls.arguments.digests"][0].startswith("hmac-sha256:")
    # the canonical form of the arguments (what the executed tool digests too), not the JSON text as sent
    assert r["audit.tool_calls.arguments.sizes"] == [len(json.dumps(TOOL_ARGUMENTS, separators=(",", ":"), sort_keys=True))]
    assert "audit.tool_calls.arguments" not in r
    assert r["audit.input.digest"].startswith("hmac-sha256:") and r["audit.input.size"] > len(PROMPT)
    assert_linked(record, span)


def test_server_attributes_follow_each_client(audit: Any, server: FakeLLMServer) -> None:
    """server.address/port come from the client that made the call, also when calls alternate
    between clients and when a client's ``base_url`` is changed (the last URL seen is remembered)."""
    with FakeLLMServer() as other:
        here, there = server.port, other.port
        first, second = oai(server), oai(other)
        for client in (first, second, first, second):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        first.base_url = other.openai_base_url
        first.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    ports = [s.attributes["server.port"] for s in sorted(audit.spans_(), key=lambda s: s.start_time)]
    assert ports == [here, there, here, there, there]
    record_ports = [attrs(r)["server.port"] for r in audit.records()]
    assert record_ports == ports


def test_openai_chat_stream_exhausted(audit: Any, server: FakeLLMServer) -> None:
    stream = oai(server).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)  # the proxy keeps the SDK type behaviour
    assert stream.response.status_code == 200
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == REPLY_TEXT
    span = only(audit.spans_())
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert span.attributes["gen_ai.usage.output_tokens"] == 9
    assert span.attributes["gen_ai.response.time_to_first_chunk"] >= 0
    r = attrs(only(audit.records()))
    assert r["audit.outcome"] == "success" and r["audit.stream.end"] == "exhausted"
    assert r["audit.model_call.streaming"] is True
    assert r["audit.output.size"] > len(REPLY_TEXT)
    stream.close()  # closing after exhaustion writes nothing more
    assert len(audit.records()) == 1 and len(audit.spans_()) == 1


def test_openai_chat_stream_tool_call_deltas_are_accumulated(audit: Any, server: FakeLLMServer) -> None:
    with oai(server).chat.completions.create(model="gpt-tools", messages=MESSAGES, stream=True) as stream:
        chunks = list(stream)
    assert chunks
    r = attrs(only(audit.records()))
    assert r["audit.tool_calls.names"] == [TOOL_NAME] and r["audit.tool_calls.ids"] == [TOOL_CALL_ID]
    assert r["audit.tool_calls.arguments.sizes"] == [len(json.dumps(TOOL_ARGUMENTS, separators=(",", ":"), sort_keys=True))]
    assert r["gen_ai.response.finish_reasons"] == ["tool_calls"]


def test_openai_stream_early_break_then_close(audit: Any, server: FakeLLMServer) -> None:
    stream = oai(server).chat.completions.create(model="gpt-long", messages=MESSAGES, stream=True)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    assert audit.records() == []  # still open: the caller may resume
    stream.close()
    stream.close()
    r = attrs(only(audit.records()))
    assert r["audit.outcome"] == "unknown" and r["audit.stream.end"] == "closed"
    assert only(audit.spans_()).attributes["auditel.stream.end"] == "closed"


def test_openai_stream_break_inside_with_block(audit: Any, server: FakeLLMServer) -> None:
    with oai(server).chat.completions.create(model="gpt-long", messages=MESSAGES, stream=True) as stream:
        for _ in stream:
            break
    r = attrs(only(audit.records()))
    assert r["audit.stream.end"] == "closed" and r["audit.outcome"] == "unknown"


def test_openai_abandoned_stream_is_finalized_by_gc(audit: Any, server: FakeLLMServer) -> None:
    def consume_a_little() -> None:
        stream = oai(server).chat.completions.create(model="gpt-long", messages=MESSAGES, stream=True)
        next(iter(stream))

    consume_a_little()
    gc.collect()
    r = attrs(only(audit.records()))
    assert r["audit.outcome"] == "unknown" and r["audit.stream.end"] == "abandoned"
    assert only(audit.spans_()).end_time is not None


def test_openai_chat_stream_helper_early_exit(audit: Any, server: FakeLLMServer) -> None:
    client = oai(server)
    with client.chat.completions.stream(model="gpt-long", messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content.delta":
                break
    r = attrs(only(audit.records()))
    assert r["audit.stream.end"] == "closed"
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == REPLY_TEXT
    assert [attrs(x)["audit.outcome"] for x in audit.records()] == ["unknown", "success"]


def test_openai_async_chat_and_stream(audit: Any, server: FakeLLMServer) -> None:
    async def main() -> tuple[str, str, Any]:
        client = aoai(server)
        done = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.AsyncStream)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        early = await client.chat.completions.create(model="gpt-long", messages=MESSAGES, stream=True)
        async for _ in early:
            break
        await early.aclose()
        return done.choices[0].message.content, "".join(parts), early

    first, streamed, _ = asyncio.run(main())
    assert first == REPLY_TEXT and streamed == REPLY_TEXT
    ends = [(attrs(r)["audit.outcome"], attrs(r).get("audit.stream.end")) for r in audit.records()]
    assert ends == [("success", None), ("success", "exhausted"), ("unknown", "closed")]
    assert len(audit.spans_()) == 3


# --- OpenAI Responses API --------------------------------------------------------------------------------
def test_openai_responses_sync_async_and_stream(audit: Any, server: FakeLLMServer) -> None:
    client = oai(server)
    response = client.responses.create(model="gpt-5", input=PROMPT, instructions=SYSTEM, max_output_tokens=64)
    assert response.output_text == REPLY_TEXT
    tools = client.responses.create(model="gpt-tools", input=[{"role": "user", "content": PROMPT}])
    assert tools.output[0].type == "function_call"
    with client.responses.stream(model="gpt-5", input=PROMPT) as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().output_text == REPLY_TEXT

    async def run_async() -> str:
        aclient = aoai(server)
        events = await aclient.responses.create(model="gpt-5", input=PROMPT, stream=True)
        kinds = [e.type async for e in events]
        assert kinds[-1] == "response.completed"
        return (await aclient.responses.create(model="gpt-5", input=PROMPT)).id

    assert asyncio.run(run_async()) == "resp_test_1"
    spans = audit.spans_()
    assert [s.name for s in spans] == ["chat gpt-5", "chat gpt-tools", "chat gpt-5", "chat gpt-5", "chat gpt-5"]
    assert spans[0].attributes["gen_ai.request.max_tokens"] == 64
    assert spans[0].attributes["gen_ai.usage.cache_read.input_tokens"] == 5
    assert spans[0].attributes["gen_ai.usage.reasoning.output_tokens"] == 2
    records = [attrs(r) for r in audit.records()]
    assert all(r["audit.outcome"] == "success" and r["gen_ai.response.id"] == "resp_test_1" for r in records)
    assert records[1]["audit.tool_calls.names"] == [TOOL_NAME] and records[1]["audit.tool_calls.ids"] == [TOOL_CALL_ID]
    assert records[2]["audit.stream.end"] == "exhausted" and records[2]["gen_ai.usage.output_tokens"] == 11


# --- raw responses ------------------------------------------------------------------------------------------
def test_with_raw_response_paths_keep_working(audit: Any, server: FakeLLMServer) -> None:
    client = oai(server)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.headers.get("x-request-id") == "req_test"
    assert type(raw) is openai._legacy_response.LegacyAPIResponse  # returned as is: its body was already read
    completion = raw.parse()
    assert completion.choices[0].message.content == REPLY_TEXT and raw.parse() is completion
    assert attrs(audit.records()[-1])["gen_ai.response.id"] == "chatcmpl-test-1"  # recorded without waiting for parse

    raw_stream = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw_stream.parse() if c.choices)
    assert text == REPLY_TEXT
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as resp:
        assert resp.parse().id == "chatcmpl-test-1"
    msg = ant(server).messages.with_raw_response.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": PROMPT}])
    assert msg.parse().content[0].text == REPLY_TEXT
    records = [attrs(r) for r in audit.records()]
    assert [r["audit.outcome"] for r in records] == ["success"] * 4
    assert records[1]["audit.stream.end"] == "exhausted"
    assert records[2]["gen_ai.response.id"] == "chatcmpl-test-1"
    assert records[3]["gen_ai.provider.name"] == "anthropic"


# --- errors ---------------------------------------------------------------------------------------------------
def _error_of(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        return exc
    raise AssertionError("no error")


def test_errors_are_raised_unchanged_and_recorded(audit: Any, server: FakeLLMServer) -> None:
    client = oai(server, timeout=5)
    err = _error_of(lambda: client.chat.completions.create(model="server-error", messages=MESSAGES))
    assert isinstance(err, openai.InternalServerError) and err.status_code == 500
    bad = _error_of(lambda: client.chat.completions.create(model="malformed", messages=MESSAGES))
    auditel.uninstrument()
    plain_bad = _error_of(lambda: client.chat.completions.create(model="malformed", messages=MESSAGES))
    assert type(bad) is type(plain_bad) and str(bad) == str(plain_bad)
    aerr = _error_of(lambda: ant(server).messages.create(model="server-error", max_tokens=5, messages=[{"role": "user", "content": "x"}]))
    assert isinstance(aerr, anthropic.InternalServerError)

    spans = audit.spans_()
    assert len(spans) == 2
    assert spans[0].attributes["error.type"] == "InternalServerError"
    assert spans[0].status.status_code.name == "ERROR"
    assert spans[1].attributes["error.type"] == type(bad).__qualname__
    records = [attrs(r) for r in audit.records()]
    assert [(r["audit.outcome"], r["error.type"]) for r in records] == [
        ("failure", "InternalServerError"),
        ("failure", type(bad).__qualname__),
    ]
    assert "audit.error.message" not in records[0]  # messages can carry content: off by default


def test_rate_limit_retry_is_one_successful_call(audit: Any, server: FakeLLMServer) -> None:
    before = len(server.requests)
    result = oai(server).chat.completions.create(model="rate-limited-a", messages=MESSAGES)
    assert result.choices[0].message.content == REPLY_TEXT
    assert len(server.requests) - before == 2  # the 429, then the retry
    message = ant(server).messages.create(model="rate-limited-b", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert message.content[0].text == REPLY_TEXT
    assert [attrs(r)["audit.outcome"] for r in audit.records()] == ["success", "success"]
    assert len(audit.spans_()) == 2


def test_stream_error_mid_iteration_is_failure(audit: Any, server: FakeLLMServer) -> None:
    stream = oai(server).chat.completions.create(model="stream-error", messages=MESSAGES, stream=True)
    err = _error_of(lambda: list(stream))
    assert isinstance(err, openai.APIError)
    aerr = _error_of(lambda: list(ant(server).messages.create(model="stream-error", max_tokens=5, messages=[{"role": "user", "content": "x"}], stream=True)))
    assert isinstance(aerr, anthropic.APIStatusError) or isinstance(aerr, anthropic.APIError)
    records = [attrs(r) for r in audit.records()]
    assert [(r["audit.outcome"], r["audit.stream.end"]) for r in records] == [("failure", "error")] * 2
    assert records[0]["error.type"] == type(err).__qualname__ and records[1]["error.type"] == type(aerr).__qualname__
    assert all(s.status.status_code.name == "ERROR" for s in audit.spans_())


# --- Anthropic --------------------------------------------------------------------------------------------------
def test_anthropic_create_stream_and_helper(audit: Any, server: FakeLLMServer) -> None:
    client = ant(server)
    msg = client.messages.create(
        model="claude-tools", max_tokens=100, system=SYSTEM, stop_sequences=["END"], messages=[{"role": "user", "content": PROMPT}]
    )
    assert msg.stop_reason == "tool_use"
    stream = client.messages.create(model="claude-x", max_tokens=100, messages=[{"role": "user", "content": PROMPT}], stream=True)
    assert isinstance(stream, anthropic.Stream)
    kinds = [e.type for e in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    with client.messages.stream(model="claude-tools", max_tokens=100, messages=[{"role": "user", "content": PROMPT}]) as helper:
        final = helper.get_final_message()
    assert final.content[0].input == TOOL_ARGUMENTS
    with client.messages.stream(model="claude-long", max_tokens=100, messages=[{"role": "user", "content": PROMPT}]) as helper:
        for _ in helper.text_stream:
            break

    spans = audit.spans_()
    assert [s.name for s in spans] == ["chat claude-tools", "chat claude-x", "chat claude-tools", "chat claude-long"]
    a = spans[0].attributes
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.request.stop_sequences"] == ("END",) and a["gen_ai.request.max_tokens"] == 100
    assert a["gen_ai.usage.input_tokens"] == 21  # 13 fresh + 6 cache read + 2 cache creation
    assert a["gen_ai.usage.cache_read.input_tokens"] == 6 and a["gen_ai.usage.cache_creation.input_tokens"] == 2
    assert a["gen_ai.response.finish_reasons"] == ("tool_use",)
    records = [attrs(r) for r in audit.records()]
    assert records[0]["audit.tool_calls.names"] == [TOOL_NAME] and records[0]["audit.tool_calls.ids"] == [TOOL_CALL_ID]
    assert records[1]["audit.stream.end"] == "exhausted" and records[1]["gen_ai.usage.output_tokens"] == 9
    assert records[2]["audit.tool_calls.names"] == [TOOL_NAME]
    assert records[2]["audit.tool_calls.arguments.sizes"] == [len(json.dumps(TOOL_ARGUMENTS, separators=(",", ":")))]
    assert (records[3]["audit.outcome"], records[3]["audit.stream.end"]) == ("unknown", "closed")


def test_anthropic_async_and_abandoned(audit: Any, server: FakeLLMServer) -> None:
    async def main() -> str:
        client = aant(server)
        msg = await client.messages.create(model="claude-x", max_tokens=10, messages=[{"role": "user", "content": PROMPT}])
        async with client.messages.stream(model="claude-x", max_tokens=10, messages=[{"role": "user", "content": PROMPT}]) as s:
            text = await s.get_final_text()
        assert text == REPLY_TEXT
        stream = await client.messages.create(model="claude-long", max_tokens=10, messages=[{"role": "user", "content": "x"}], stream=True)
        async for _ in stream:
            break
        del stream
        return msg.content[0].text

    assert asyncio.run(main()) == REPLY_TEXT
    gc.collect()
    ends = [(attrs(r)["audit.outcome"], attrs(r).get("audit.stream.end")) for r in audit.records()]
    assert ends == [("success", None), ("success", "exhausted"), ("unknown", "abandoned")]


# --- content capture ----------------------------------------------------------------------------------------------
def _one_of_each(server: FakeLLMServer) -> None:
    client = oai(server)
    client.chat.completions.create(model="gpt-tools", messages=MESSAGES)
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    client.responses.create(model="gpt-5", input=PROMPT, instructions=SYSTEM)
    ant(server).messages.create(model="claude-tools", max_tokens=5, system=SYSTEM, messages=[{"role": "user", "content": PROMPT}])


SECRETS = (PROMPT.encode(), SYSTEM.encode(), REPLY_TEXT.encode(), ARGS_MARKER.encode(), b"the answer is forty-two")


def _span_text(audit: Any) -> str:
    return json.dumps([dict(s.attributes) for s in audit.spans_()] + [[dict(e.attributes or {}) for e in s.events] for s in audit.spans_()])


def test_default_mode_keeps_no_content_anywhere(audit: Any, server: FakeLLMServer) -> None:
    _one_of_each(server)
    auditel_runtime._reset_for_tests()  # stream end record written, WAL checkpointed or not: read every file
    data = outbox_bytes(audit.outbox)
    assert len(audit.records()) == 4
    for secret in SECRETS:
        assert secret not in data, secret
    spans = _span_text(audit)
    for secret in SECRETS:
        assert secret.decode() not in spans
    assert audit.logs.get_finished_logs() == ()  # no details event by default


def test_span_only_puts_content_on_spans_not_records(audit: Any, server: FakeLLMServer) -> None:
    audit.restart(content="SPAN_ONLY")
    _one_of_each(server)
    span = audit.spans_()[0]
    inputs = json.loads(span.attributes["gen_ai.input.messages"])
    assert inputs[1] == {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
    outputs = json.loads(span.attributes["gen_ai.output.messages"])
    assert outputs[0]["parts"][0] == {"type": "tool_call", "id": TOOL_CALL_ID, "name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}
    assert REPLY_TEXT in audit.spans_()[1].attributes["gen_ai.output.messages"]
    assert SYSTEM in audit.spans_()[2].attributes["gen_ai.system_instructions"]
    auditel_runtime._reset_for_tests()
    data = outbox_bytes(audit.outbox)
    for secret in SECRETS:
        assert secret not in data
    assert audit.logs.get_finished_logs() == ()


@pytest.mark.parametrize("mode", ["EVENT_ONLY", "event_only"])
def test_event_only_puts_content_in_records_and_event(audit: Any, server: FakeLLMServer, mode: str) -> None:
    audit.restart(content=mode)
    _one_of_each(server)
    assert "gen_ai.input.messages" not in _span_text(audit)
    records = [attrs(r) for r in audit.records()]
    assert PROMPT in records[0]["gen_ai.input.messages"] and ARGS_MARKER in records[0]["audit.tool_calls.arguments"][0]
    assert REPLY_TEXT in records[1]["gen_ai.output.messages"]
    events = [lr.log_record for lr in audit.logs.get_finished_logs()]
    assert [e.event_name for e in events] == ["gen_ai.client.inference.operation.details"] * 4
    first = events[0].attributes
    assert first["gen_ai.input.messages"][1]["parts"][0]["content"] == PROMPT  # structured on events
    assert first["gen_ai.response.id"] == "chatcmpl-test-1"


@pytest.mark.parametrize("mode", ["SPAN_AND_EVENT", "true"])
def test_span_and_event_and_legacy_true(audit: Any, server: FakeLLMServer, mode: str) -> None:
    audit.restart(content=mode)
    _one_of_each(server)
    assert PROMPT in audit.spans_()[0].attributes["gen_ai.input.messages"]
    assert PROMPT in attrs(audit.records()[0])["gen_ai.input.messages"]
    assert len(audit.logs.get_finished_logs()) == 4


def test_emit_event_flag_overrides_mode(audit: Any, server: FakeLLMServer) -> None:
    audit.restart(content="EVENT_ONLY", emit="false")
    _one_of_each(server)
    assert audit.logs.get_finished_logs() == ()
    audit.logs.clear()
    audit.restart(content=None, emit="true")
    _one_of_each(server)
    events = [lr.log_record for lr in audit.logs.get_finished_logs()]
    assert len(events) == 4
    assert all("gen_ai.input.messages" not in e.attributes for e in events)  # event without content
    assert events[0].attributes["gen_ai.usage.input_tokens"] == 21


# --- lifecycle of the instrumentation ------------------------------------------------------------------------------
def test_uninstrument_restores_originals(audit: Any, server: FakeLLMServer) -> None:
    from openai.resources.chat.completions.completions import Completions
    from openai.resources.responses.responses import AsyncResponses
    from anthropic.resources.messages.messages import Messages

    client = oai(server)
    cached_raw = client.chat.completions.with_raw_response  # the SDK caches this bound wrapper
    assert isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)
    auditel.uninstrument()
    for owner, name in ((Completions, "create"), (Completions, "parse"), (AsyncResponses, "create"), (Messages, "stream")):
        assert not isinstance(owner.__dict__[name], wrapt.FunctionWrapper), (owner, name)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    cached_raw.create(model="gpt-4o", messages=MESSAGES).parse()
    with ant(server).messages.stream(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as s:
        s.get_final_text()
    assert audit.records() == [] and audit.spans_() == []
    auditel.instrument("openai")
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(audit.records()) == 1


def test_disabled_auditel_does_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FakeLLMServer, exporters: Any) -> None:
    spans, _ = exporters
    auditel_runtime._reset_for_tests()
    monkeypatch.setenv("AUDITEL_ENABLED", "false")
    auditel.instrument("openai")
    try:
        result = oai(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = oai(server).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert type(stream) is openai.Stream  # not even proxied
        list(stream)
        assert result.choices[0].message.content == REPLY_TEXT
        assert model_spans(spans) == []
    finally:
        auditel.uninstrument()
        auditel_runtime._reset_for_tests()


@pytest.mark.parametrize("order", ["auditel_first", "openllmetry_first"])
def test_coexists_with_openllmetry(audit: Any, server: FakeLLMServer, order: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from openai.resources.chat.completions.completions import Completions
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry

    monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "false")
    vendor = OpenLLMetry()
    if order == "openllmetry_first":
        auditel.uninstrument()
        vendor.instrument()
        auditel.instrument("openai", "anthropic")
    else:
        vendor.instrument()
    try:
        client = oai(server)
        done = client.chat.completions.create(model="gpt-tools", messages=MESSAGES)
        assert done.choices[0].message.tool_calls[0].id == TOOL_CALL_ID
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) if c.choices)
        assert text == REPLY_TEXT

        async def run_async() -> str:
            r = await aoai(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
            return r.choices[0].message.content

        assert asyncio.run(run_async()) == REPLY_TEXT
        assert [attrs(r)["audit.outcome"] for r in audit.records()] == ["success"] * 3
        vendor_spans = [s for s in audit.spans.get_finished_spans() if s.instrumentation_scope.name != "auditel"]
        assert vendor_spans, "OpenLLMetry kept working"
    finally:
        vendor.uninstrument()
    auditel.uninstrument()
    for name in ("create", "parse"):  # OpenLLMetry may leave its own wrappers behind; ours must be gone
        assert not any(w.__module__.startswith("auditel") for w in _wrapper_chain(Completions.__dict__[name]))
    oai(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(audit.records()) == 3


def _wrapper_chain(obj: Any) -> list[Any]:
    """The wrapper functions of a stack of wrapt FunctionWrappers, outermost first."""
    chain = []
    while isinstance(obj, wrapt.FunctionWrapper):
        chain.append(obj._self_wrapper)
        obj = obj.__wrapped__
    return chain
