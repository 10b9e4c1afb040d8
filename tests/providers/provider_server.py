"""A local HTTP server answering like the Gemini API and Amazon Bedrock Runtime (tests, benchmarks).

Point the real SDKs at it::

    server = ProviderServer().start()
    genai.Client(api_key="test", http_options={"base_url": server.url})
    boto3.client("bedrock-runtime", endpoint_url=server.url, region_name="us-east-1")

Gemini: ``POST /v1beta/models/{model}:generateContent`` (JSON) and ``:streamGenerateContent?alt=sse``
(server-sent events). Bedrock: ``POST /model/{id}/converse`` (JSON), ``/converse-stream`` and
``/invoke-with-response-stream`` (binary ``application/vnd.amazon.eventstream`` frames with real
CRCs, parsed by botocore), ``/invoke`` (the model's own body: Anthropic or Amazon Nova shapes).

The model name picks the behaviour (as in ``tests/fake_llm_server.py``): ``tools`` asks for
``get_weather`` (Gemini: until the request carries a function response, which serves automatic
function calling); ``rate-limited`` answers 429 to the first request of each name; ``server-error``
always 500; ``malformed`` a 200 with a broken body; ``long`` a long stream; ``stream-error`` a stream
that fails midway; ``guardrail`` (Bedrock) a guardrail intervention.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from fake_llm_server import (
    LONG_PIECES,
    REPLY_TEXT,
    STREAM_PIECES,
    TOOL_ARGUMENTS,
    TOOL_NAME,
    _pieces,
)

GUARDRAIL_TEXT = "Sorry, the model cannot answer that."
TOOL_USE_ID = "tooluse_test_0001"


class ProviderServer:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> ProviderServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="provider-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ProviderServer:  # noqa: PYI034 - returns start(), as FakeLLMServer does
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, key: str) -> int:
        with self._lock:
            self._seen[key] = self._seen.get(key, 0) + 1
            return self._seen[key]


# --- AWS event stream framing ------------------------------------------------------------------------
def event_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One ``application/vnd.amazon.eventstream`` message: prelude, prelude CRC, string headers,
    payload, message CRC (CRC32, big-endian), as botocore's ``EventStreamBuffer`` expects."""
    raw_headers = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        raw_headers += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF) + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


def event(kind: str, body: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return event_frame(headers, json.dumps(body).encode())


def exception_event(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return event_frame(headers, json.dumps({"message": message}).encode())


class _Handler(BaseHTTPRequestHandler):
    owner: ProviderServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        path = unquote(self.path.split("?")[0])
        self.owner.requests.append((path, body))
        if ":generateContent" in path or ":streamGenerateContent" in path:
            self._gemini(path, body)
        elif path.startswith("/model/"):
            self._bedrock(path, body)
        else:
            self._json(404, {"message": f"no route {path}"})

    # --- Gemini ----------------------------------------------------------------------------------
    def _gemini(self, path: str, body: dict[str, Any]) -> None:
        model, _, method = path.rsplit("/", 1)[1].partition(":")
        if "rate-limited" in model and self.owner.count(path) == 1:
            self._json(429, {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}})
            return
        if "server-error" in model:
            self._json(500, {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}})
            return
        if "malformed" in model:
            self._send(200, b'{"candidates": [', "application/json")
            return
        answered = any("functionResponse" in part for c in body.get("contents", []) for part in c.get("parts", []))
        tools = "tools" in model and not answered
        if method == "streamGenerateContent":
            self._sse(
                _gemini_chunks(model, tools, LONG_PIECES if "long" in model else STREAM_PIECES), "stream-error" in model
            )
        else:
            self._json(200, _gemini_response(model, tools))

    def _sse(self, chunks: Iterator[dict[str, Any]], broken: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for i, chunk in enumerate(chunks):
                if broken and i == 2:
                    self.wfile.write(
                        b'data: {"error": {"code": 500, "message": "stream broke", "status": "INTERNAL"}}\r\n\r\n'
                    )
                    self.wfile.flush()
                    return
                self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    # --- Bedrock ---------------------------------------------------------------------------------
    def _bedrock(self, path: str, body: dict[str, Any]) -> None:
        _, _, rest = path.partition("/model/")
        model, _, op = rest.rpartition("/")
        if "rate-limited" in model and self.owner.count(path) == 1:
            self._json(
                429,
                {"message": "Too many requests, please wait before trying again."},
                {"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"},
            )
            return
        if "server-error" in model:
            self._json(500, {"message": "Internal server error"}, {"x-amzn-ErrorType": "InternalServerException"})
            return
        if "malformed" in model:
            self._send(200, b'{"output": {"message": ', "application/json")
            return
        tools, guard = "tools" in model, "guardrail" in model
        pieces = LONG_PIECES if "long" in model else STREAM_PIECES
        if op == "converse":
            self._json(200, _converse(model, tools, guard))
        elif op == "converse-stream":
            self._frames(_converse_events(tools, guard, pieces), "stream-error" in model)
        elif op == "invoke":
            self._send(200, json.dumps(_invoke_body(model, guard)).encode(), "application/json")
        elif op == "invoke-with-response-stream":
            chunks = _invoke_chunks(model, pieces)
            self._frames(
                (event("chunk", {"bytes": base64.b64encode(json.dumps(c).encode()).decode()}) for c in chunks),
                "stream-error" in model,
            )
        else:
            self._json(404, {"message": f"no operation {op}"})

    def _frames(self, frames: Iterator[bytes], broken: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/vnd.amazon.eventstream")
        self.send_header("x-amzn-requestid", "req-test-1")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for i, frame in enumerate(frames):
                if broken and i == 2:
                    self.wfile.write(exception_event("modelStreamErrorException", "The model stream failed"))
                    self.wfile.flush()
                    return
                self.wfile.write(frame)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    # --- writing ---------------------------------------------------------------------------------
    def _send(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.send_header("x-amzn-requestid", "req-test-1")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)


# --- Gemini shapes ---------------------------------------------------------------------------------------
def _gemini_usage() -> dict[str, Any]:
    return {
        "promptTokenCount": 21,
        "candidatesTokenCount": 9,
        "cachedContentTokenCount": 4,
        "thoughtsTokenCount": 3,
        "totalTokenCount": 33,
    }


def _gemini_response(model: str, tools: bool) -> dict[str, Any]:
    part = {"functionCall": {"name": TOOL_NAME, "args": TOOL_ARGUMENTS}} if tools else {"text": REPLY_TEXT}
    return {
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": _gemini_usage(),
        "modelVersion": model + "-001",
        "responseId": "gemini-resp-1",
    }


def _gemini_chunks(model: str, tools: bool, pieces: int) -> Iterator[dict[str, Any]]:
    base = {"modelVersion": model + "-001", "responseId": "gemini-resp-1"}
    if tools:
        yield {
            **base,
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"functionCall": {"name": TOOL_NAME, "args": TOOL_ARGUMENTS}}],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": _gemini_usage(),
        }
        return
    texts = (
        _pieces(REPLY_TEXT, pieces)
        if pieces <= len(REPLY_TEXT)
        else [REPLY_TEXT[i % len(REPLY_TEXT)] for i in range(pieces)]
    )
    for i, text in enumerate(texts):
        cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        chunk: dict[str, Any] = {**base, "candidates": [cand]}
        if i == len(texts) - 1:
            cand["finishReason"] = "STOP"
            chunk["usageMetadata"] = _gemini_usage()
        yield chunk


# --- Bedrock shapes ----------------------------------------------------------------------------------------
def _bedrock_usage() -> dict[str, Any]:
    return {
        "inputTokens": 21,
        "outputTokens": 9,
        "totalTokens": 30,
        "cacheReadInputTokens": 4,
        "cacheWriteInputTokens": 2,
    }


def _guardrail_trace() -> dict[str, Any]:
    return {
        "guardrail": {
            "inputAssessment": {
                "gr-test-1": {
                    "contentPolicy": {
                        "filters": [
                            {
                                "type": "VIOLENCE",
                                "confidence": "HIGH",
                                "filterStrength": "HIGH",
                                "action": "BLOCKED",
                                "detected": True,
                            }
                        ]
                    },
                    "invocationMetrics": {"guardrailProcessingLatency": 5},
                }
            }
        }
    }


def _converse(model: str, tools: bool, guard: bool) -> dict[str, Any]:
    if guard:
        content: list[dict[str, Any]] = [{"text": GUARDRAIL_TEXT}]
        stop = "guardrail_intervened"
    elif tools:
        content = [{"toolUse": {"toolUseId": TOOL_USE_ID, "name": TOOL_NAME, "input": TOOL_ARGUMENTS}}]
        stop = "tool_use"
    else:
        content = [{"text": REPLY_TEXT}]
        stop = "end_turn"
    out: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": _bedrock_usage(),
        "metrics": {"latencyMs": 5},
    }
    if guard:
        out["trace"] = _guardrail_trace()
    return out


def _converse_events(tools: bool, guard: bool, pieces: int) -> Iterator[bytes]:
    yield event("messageStart", {"role": "assistant"})
    texts = (
        [GUARDRAIL_TEXT] if guard else (_pieces(REPLY_TEXT, pieces) if pieces <= len(REPLY_TEXT) else ["x"] * pieces)
    )
    for text in texts:
        yield event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}})
    yield event("contentBlockStop", {"contentBlockIndex": 0})
    stop = "end_turn"
    if tools:
        yield event(
            "contentBlockStart",
            {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": TOOL_USE_ID, "name": TOOL_NAME}}},
        )
        raw = json.dumps(TOOL_ARGUMENTS)
        for piece in (raw[:10], raw[10:]):
            yield event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": piece}}})
        yield event("contentBlockStop", {"contentBlockIndex": 1})
        stop = "tool_use"
    if guard:
        stop = "guardrail_intervened"
    yield event("messageStop", {"stopReason": stop})
    meta: dict[str, Any] = {"usage": _bedrock_usage(), "metrics": {"latencyMs": 5}}
    if guard:
        meta["trace"] = _guardrail_trace()
    yield event("metadata", meta)


def _invoke_body(model: str, guard: bool) -> dict[str, Any]:
    if "anthropic" in model:
        return {
            "id": "msg_bdrk_test_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "text", "text": GUARDRAIL_TEXT if guard else REPLY_TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 21,
                "output_tokens": 9,
                "cache_read_input_tokens": 4,
                "cache_creation_input_tokens": 2,
            },
            **({"amazon-bedrock-guardrailAction": "INTERVENED"} if guard else {}),
        }
    return {  # Amazon Nova
        "output": {"message": {"role": "assistant", "content": [{"text": GUARDRAIL_TEXT if guard else REPLY_TEXT}]}},
        "stopReason": "guardrail_intervened" if guard else "end_turn",
        "usage": {
            "inputTokens": 21,
            "outputTokens": 9,
            "totalTokens": 30,
            "cacheReadInputTokenCount": 4,
            "cacheWriteInputTokenCount": 2,
        },
        **({"amazon-bedrock-guardrailAction": "INTERVENED"} if guard else {}),
    }


def _invoke_chunks(model: str, pieces: int) -> list[dict[str, Any]]:
    texts = _pieces(REPLY_TEXT, pieces) if pieces <= len(REPLY_TEXT) else ["x"] * pieces
    metrics = {
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 21,
            "outputTokenCount": 9,
            "invocationLatency": 5,
            "firstByteLatency": 2,
        }
    }
    if "anthropic" in model:
        chunks: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_bdrk_test_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-test",
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": 21, "output_tokens": 1},
                },
            },
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ]
        chunks += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}} for t in texts
        ]
        chunks += [
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
            {"type": "message_stop", **metrics},
        ]
        return chunks
    chunks = [{"messageStart": {"role": "assistant"}}]
    chunks += [{"contentBlockDelta": {"delta": {"text": t}, "contentBlockIndex": 0}} for t in texts]
    chunks += [
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {"metadata": {"usage": {"inputTokens": 21, "outputTokens": 9}}, **metrics},
    ]
    return chunks
