"""A local HTTP server that answers like the OpenAI and Anthropic APIs (for tests and benchmarks).

Point real SDK clients at it::

    server = FakeLLMServer().start()
    openai.OpenAI(base_url=server.openai_base_url, api_key="test")
    anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test")

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/responses``, ``POST /v1/messages``; JSON or
server-sent events (``"stream": true``), in the providers' real response shapes.

The requested *model name* picks the behaviour, so one server serves every scenario:

* any name: a normal answer whose text is ``REPLY_TEXT`` (split into ``STREAM_PIECES`` chunks);
* a name containing ``tools``: the model asks for the tool ``get_weather`` with ``TOOL_ARGUMENTS``;
* ``rate-limited``: the first request of each name gets 429 with ``retry-after-ms``, then success;
* ``server-error``: always 500 with an error body;
* ``malformed``: 200 with a body that is not JSON;
* ``long``: a stream of ``LONG_PIECES`` chunks (for early-break tests);
* ``stream-error``: a stream that sends a few events, then an error event (the SDKs raise).

Every request body is kept in ``server.requests`` (path, parsed JSON).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

REPLY_TEXT = "COMPLETION-MARKER-7f3a the answer is forty-two"
STREAM_PIECES = 4
LONG_PIECES = 200
TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = {"city": "ARGS-MARKER-Paris", "unit": "celsius"}
TOOL_CALL_ID = "call_test_0001"


def _pieces(text: str, n: int) -> list[str]:
    step = max(1, -(-len(text) // n))
    return [text[i : i + step] for i in range(0, len(text), step)]


class FakeLLMServer:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> "FakeLLMServer":
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, key: str) -> int:
        with self._lock:
            self._seen[key] = self._seen.get(key, 0) + 1
            return self._seen[key]


class _Handler(BaseHTTPRequestHandler):
    owner: FakeLLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, delayed ACKs add ~40 ms a call
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?")[0]
        self.owner.requests.append((path, body))
        model = str(body.get("model", ""))
        if "rate-limited" in model and self.owner.count(f"{path}:{model}") == 1:
            self._json(429, _error_body(path, "rate_limit_error", "Rate limit reached"), {"retry-after-ms": "5", "retry-after": "1"})
            return
        if "server-error" in model:
            self._json(500, _error_body(path, "api_error", "Internal server error"))
            return
        if "malformed" in model:
            self._send(200, b'{"id": "broken", "choices": [', "application/json")
            return
        if "stream-error" in model and body.get("stream"):
            self._sse(_broken_stream(path, model), named=not path.endswith("/chat/completions"))
            return
        # "tools-once": ask for the tool until the conversation holds its result (an agent loop ends)
        tools = "tools" in model and not ("tools-once" in model and _has_tool_result(body))
        pieces = LONG_PIECES if "long" in model else STREAM_PIECES
        stream = bool(body.get("stream"))
        if path.endswith("/chat/completions"):
            if stream:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._sse(_chat_chunks(model, tools, pieces, include_usage), done_marker=True)
            else:
                self._json(200, _chat_completion(model, tools))
        elif path.endswith("/responses"):
            if stream:
                self._sse(_responses_events(model, tools, pieces), named=True)
            else:
                self._json(200, _response_object(model, tools))
        elif path.endswith("/messages"):
            if stream:
                self._sse(_anthropic_events(model, tools, pieces), named=True)
            else:
                self._json(200, _anthropic_message(model, tools))
        else:
            self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    # --- writing ------------------------------------------------------------------------------
    def _send(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", "req_test")
        self.send_header("request-id", "req_test")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _sse(self, events: Iterator[tuple[str | None, dict[str, Any]]], *, done_marker: bool = False, named: bool = False) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.send_header("x-request-id", "req_test")
        self.end_headers()
        self.close_connection = True
        try:
            for name, data in events:
                prefix = f"event: {name}\n" if named and name else ""
                self.wfile.write(f"{prefix}data: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
            if done_marker:
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client closed the stream early


def _has_tool_result(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or body.get("input") or []
    if not isinstance(messages, list):
        return False
    return any(isinstance(m, dict) and (m.get("role") == "tool" or m.get("type") == "function_call_output")
               for m in messages)


def _error_body(path: str, kind: str, message: str) -> dict[str, Any]:
    if path.endswith("/messages"):
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _broken_stream(path: str, model: str) -> Iterator[tuple[str | None, dict[str, Any]]]:
    if path.endswith("/chat/completions"):
        events: Iterator[tuple[Any, dict[str, Any]]] = _chat_chunks(model, False, STREAM_PIECES, False)
    elif path.endswith("/responses"):
        events = _responses_events(model, False, STREAM_PIECES)
    else:
        events = _anthropic_events(model, False, STREAM_PIECES)
    for _ in range(3):
        yield next(events)
    if path.endswith("/messages"):
        yield "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    else:
        yield "error", {"error": {"message": "The server had an error while processing your request", "type": "server_error"}}


# --- OpenAI chat completions ----------------------------------------------------------------------------
def _chat_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": 21,
        "completion_tokens": 9,
        "total_tokens": 30,
        "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": 0},
    }


def _chat_completion(model: str, tools: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if tools else REPLY_TEXT, "refusal": None}
    if tools:
        message["tool_calls"] = [
            {"id": TOOL_CALL_ID, "type": "function", "function": {"name": TOOL_NAME, "arguments": json.dumps(TOOL_ARGUMENTS)}}
        ]
    return {
        "id": "chatcmpl-test-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model + "-2026-01-01",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if tools else "stop"}],
        "usage": _chat_usage(),
        "system_fingerprint": "fp_test",
    }


def _chat_chunks(model: str, tools: bool, pieces: int, include_usage: bool) -> Iterator[tuple[None, dict[str, Any]]]:
    base = {"id": "chatcmpl-test-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": model + "-2026-01-01"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    yield None, chunk({"role": "assistant", "content": ""})
    if tools:
        args = json.dumps(TOOL_ARGUMENTS)
        yield None, chunk({"tool_calls": [{"index": 0, "id": TOOL_CALL_ID, "type": "function", "function": {"name": TOOL_NAME, "arguments": ""}}]})
        for part in _pieces(args, pieces):
            yield None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
        yield None, chunk({}, "tool_calls")
    else:
        text = REPLY_TEXT if pieces <= STREAM_PIECES else (REPLY_TEXT + " ") * (pieces // 4 + 1)
        for part in _pieces(text, pieces):
            yield None, chunk({"content": part})
        yield None, chunk({}, "stop")
    if include_usage:
        yield None, {**base, "choices": [], "usage": _chat_usage()}


# --- OpenAI Responses API ----------------------------------------------------------------------------------
def _responses_usage() -> dict[str, Any]:
    return {
        "input_tokens": 17,
        "input_tokens_details": {"cached_tokens": 5},
        "output_tokens": 11,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 28,
    }


def _response_object(model: str, tools: bool, status: str = "completed", with_output: bool = True) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if with_output:
        if tools:
            output.append(
                {"type": "function_call", "id": "fc_1", "call_id": TOOL_CALL_ID, "name": TOOL_NAME, "arguments": json.dumps(TOOL_ARGUMENTS), "status": "completed"}
            )
        else:
            output.append(
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": REPLY_TEXT, "annotations": []}],
                }
            )
    return {
        "id": "resp_test_1",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model + "-2026-01-01",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _responses_usage() if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
    }


def _responses_events(model: str, tools: bool, pieces: int) -> Iterator[tuple[str, dict[str, Any]]]:
    seq = iter(range(1_000_000))
    pending = _response_object(model, tools, status="in_progress", with_output=False)
    yield "response.created", {"type": "response.created", "response": pending, "sequence_number": next(seq)}
    yield "response.in_progress", {"type": "response.in_progress", "response": pending, "sequence_number": next(seq)}
    if not tools:
        item = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}
        yield "response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": item, "sequence_number": next(seq)}
        part0 = {"type": "output_text", "text": "", "annotations": []}
        yield "response.content_part.added", {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": part0,
            "sequence_number": next(seq),
        }
        text = REPLY_TEXT if pieces <= STREAM_PIECES else (REPLY_TEXT + " ") * (pieces // 4 + 1)
        for part in _pieces(text, pieces):
            yield "response.output_text.delta", {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": part,
                "logprobs": [],
                "sequence_number": next(seq),
            }
        yield "response.output_text.done", {
            "type": "response.output_text.done",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "text": text,
            "logprobs": [],
            "sequence_number": next(seq),
        }
        finished = _response_object(model, tools)["output"][0]
        yield "response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": finished, "sequence_number": next(seq)}
    done = _response_object(model, tools)
    yield "response.completed", {"type": "response.completed", "response": done, "sequence_number": next(seq)}


# --- Anthropic messages ----------------------------------------------------------------------------------------
def _anthropic_usage(output_tokens: int = 9) -> dict[str, Any]:
    return {"input_tokens": 13, "output_tokens": output_tokens, "cache_read_input_tokens": 6, "cache_creation_input_tokens": 2}


def _anthropic_message(model: str, tools: bool) -> dict[str, Any]:
    content: list[dict[str, Any]]
    if tools:
        content = [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": TOOL_CALL_ID, "name": TOOL_NAME, "input": TOOL_ARGUMENTS},
        ]
    else:
        content = [{"type": "text", "text": REPLY_TEXT}]
    return {
        "id": "msg_test_1",
        "type": "message",
        "role": "assistant",
        "model": model + "-20260101",
        "content": content,
        "stop_reason": "tool_use" if tools else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(),
    }


def _anthropic_events(model: str, tools: bool, pieces: int) -> Iterator[tuple[str, dict[str, Any]]]:
    start = _anthropic_message(model, tools)
    start = {**start, "content": [], "stop_reason": None, "usage": _anthropic_usage(output_tokens=1)}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    if tools:
        yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": TOOL_CALL_ID, "name": TOOL_NAME, "input": {}}}
        for part in _pieces(json.dumps(TOOL_ARGUMENTS), pieces):
            yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}}
    else:
        yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        text = REPLY_TEXT if pieces <= STREAM_PIECES else (REPLY_TEXT + " ") * (pieces // 4 + 1)
        for part in _pieces(text, pieces):
            yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use" if tools else "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 9},
    }
    yield "message_stop", {"type": "message_stop"}


if __name__ == "__main__":  # manual use: python tests/fake_llm_server.py
    srv = FakeLLMServer().start()
    print(f"openai base_url {srv.openai_base_url}  anthropic base_url {srv.anthropic_base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
