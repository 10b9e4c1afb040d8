"""MCP (the ``mcp`` package, 2.x): tool calls and tool discovery, client and server side.

Client (``ClientSession.call_tool``, which ``mcp.Client`` also uses): an intent record before
the request leaves and an outcome record when the answer arrives (``success``; ``failure`` for
an ``isError`` result or an exception). ``ClientSession.list_tools``: an
``auditel.tool_discovery`` record.

Server (``ServerRunner``, which serves the low-level ``Server`` and ``MCPServer`` over every
transport: stdio, SSE, streamable HTTP, in-memory, direct): intent before the tool handler runs,
outcome after it.

Spans: the MCP SDK traces requests itself (client ``MCP send tools/call {tool}``, server
``tools/call {tool}`` via ``OpenTelemetryMiddleware``) and carries the trace context in
``params._meta`` (SEP-414). Where the SDK makes the span we enrich it (``gen_ai.*``,
``audit.correlation.id``) and put our records inside it, never a duplicate span. Where it does
not (the in-process ``DirectDispatcher``, a server whose middleware list dropped the SDK
middleware), we make the span ourselves (``tools/call {tool}``, CLIENT or SERVER), inject the
context into ``_meta`` on the client and extract it on the server.

``call_tool`` returns exactly what the SDK returned and raises exactly what it raised.
"""

from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from auditel.api import helpers as api
from auditel.api.runs import UNSET, ToolRun, recording_enabled
from auditel.config import child_env
from auditel.instrumentation.base import count_error
from auditel.instrumentation.patching import Patcher, PatchingInstrumentor

FRAMEWORK = "mcp"

# The client call waiting for the SDK's own span (set by call_tool, claimed by the otel_span hook).
_PENDING_CLIENT: contextvars.ContextVar[ToolRun | None] = contextvars.ContextVar("auditel_mcp_client", default=None)
# The server-side run in progress (MCPServer.call_tool reports the real error type into it).
_SERVER_RUN: contextvars.ContextVar[ToolRun | None] = contextvars.ContextVar("auditel_mcp_server", default=None)


# --- client ------------------------------------------------------------------------------------
def _bind_call_tool(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str, Any]:
    name = args[0] if args else kwargs.get("name")
    arguments = args[1] if len(args) > 1 else kwargs.get("arguments")
    return str(name), arguments


def _result_content(result: Any) -> Any:
    """A tool result in the one form both sides digest: the ``CallToolResult`` model dumped as JSON.

    The client holds the parsed model, the server (over JSON-RPC) the wire dict the handler made,
    which omits defaults the model fills in (``isError: false``): validating the wire dict into
    the same model first gives both sides the same canonical JSON, so their digests match.
    """
    if isinstance(result, Mapping):
        try:
            from mcp_types import CallToolResult

            result = CallToolResult.model_validate(dict(result))
        except Exception:  # noqa: BLE001 - not a CallToolResult: digest the dict as it is
            return dict(result)
    dump = getattr(result, "model_dump", None)
    if dump is not None:
        return dump(mode="json", by_alias=True, exclude_none=True)
    return result


def _server_name(session: Any) -> str | None:
    try:
        info = session.server_info
        return getattr(info, "name", None)
    except Exception:  # noqa: BLE001 - before the handshake the property may raise
        return None


def _sdk_traces(session: Any) -> bool:
    try:
        from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

        return isinstance(getattr(session, "_dispatcher", None), JSONRPCDispatcher)
    except Exception:  # noqa: BLE001
        return False


def _sdk_hook_installed() -> bool:
    module = sys.modules.get("mcp.shared.jsonrpc_dispatcher")
    return module is not None and getattr(getattr(module, "otel_span", None), "_self_auditel", False) is True


def _with_meta_context(kwargs: dict[str, Any], run: ToolRun) -> None:
    """SEP-414: put our span's trace context into ``params._meta`` (a copy; the caller's dict is untouched)."""
    if run.span is None:
        return
    meta = dict(kwargs.get("meta") or {})
    propagate.inject(meta, context=trace.set_span_in_context(run.span))
    kwargs["meta"] = meta


async def _call_tool(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not recording_enabled():
        return await wrapped(*args, **kwargs)
    run: ToolRun | None = None
    token = None
    try:
        name, arguments = _bind_call_tool(args, kwargs)
        attrs = {
            "mcp.method.name": "tools/call",
            "audit.framework": FRAMEWORK,
            "audit.mcp.side": "client",
            "audit.mcp.server.name": _server_name(instance),
        }
        run = ToolRun(
            name,
            arguments=arguments if arguments is not None else {},
            tool_type="extension",
            attributes={k: v for k, v in attrs.items() if v is not None},
        )
        if _sdk_traces(instance) and _sdk_hook_installed():
            token = _PENDING_CLIENT.set(run)  # the SDK span hook adopts the span and writes the intent
        else:
            run.start_span(f"tools/call {name}", kind=SpanKind.CLIENT, extra={"mcp.method.name": "tools/call"})
            kwargs = dict(kwargs)
            _with_meta_context(kwargs, run)
            run.start()
    except Exception as exc:  # noqa: BLE001
        count_error("mcp", exc)
    if run is None:
        return await wrapped(*args, **kwargs)
    try:
        with run.active() if run.owns_span else _nothing():
            result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        if token is not None:
            _PENDING_CLIENT.reset(token)
        if not run.started:
            run.start()  # the request never reached the SDK span: still record what was attempted
        run.finish(error=exc, outcome="unknown" if _is_cancel(exc) else None)
        raise
    if token is not None:
        _PENDING_CLIENT.reset(token)
    try:
        if not run.started:
            run.start()
        is_error = bool(getattr(result, "is_error", False))
        run.finish(
            result=_result_content(result),
            outcome="failure" if is_error else "success",
            error="tool_error" if is_error else None,
        )
    except Exception as exc:  # noqa: BLE001
        count_error("mcp", exc)
    return result


def _is_cancel(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)) or type(exc).__name__ == "Cancelled"


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _adopting(cm: Any, run: ToolRun) -> Iterator[Any]:
    with cm as span:
        try:
            if not run.started:
                run.adopt_span(span, extra={"audit.mcp.side": "client"})
                run.start()
        except Exception as exc:  # noqa: BLE001
            count_error("mcp", exc)
        yield span


def _sdk_span(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Hook on the SDK's ``otel_span``: when it opens the span of our pending ``tools/call``, adopt it."""
    cm = wrapped(*args, **kwargs)
    run = _PENDING_CLIENT.get()
    if run is None:
        return cm
    attributes = kwargs.get("attributes") or {}
    if attributes.get("mcp.method.name") != "tools/call" or run.started:
        return cm
    return _adopting(cm, run)


async def _list_tools(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not recording_enabled():
        return await wrapped(*args, **kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        try:
            api.tool_discovery(
                _server_name(instance),
                [],
                outcome="failure",
                error=exc,
                attributes={"mcp.method.name": "tools/list", "audit.framework": FRAMEWORK},
            )
        except Exception as err:  # noqa: BLE001
            count_error("mcp", err)
        raise
    try:
        names = [str(getattr(t, "name", "")) for t in getattr(result, "tools", [])]
        api.tool_discovery(
            _server_name(instance),
            names,
            attributes={
                "mcp.method.name": "tools/list",
                "audit.framework": FRAMEWORK,
                "audit.tools.next_cursor_present": getattr(result, "next_cursor", None) is not None,
            },
        )
    except Exception as exc:  # noqa: BLE001
        count_error("mcp", exc)
    return result


# --- server ------------------------------------------------------------------------------------
def _meta_dict(meta: Any) -> dict[str, Any] | None:
    if meta is None:
        return None
    if isinstance(meta, Mapping):
        return dict(meta)
    dump = getattr(meta, "model_dump", None)
    return dump(by_alias=True) if dump is not None else None


def _has_sdk_middleware(server: Any) -> bool:
    try:
        from mcp.server._otel import OpenTelemetryMiddleware

        return any(isinstance(m, OpenTelemetryMiddleware) for m in getattr(server, "middleware", ()))
    except Exception:  # noqa: BLE001
        return False


def _error_code(exc: BaseException) -> str:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return str(code) if code is not None else type(exc).__qualname__


# Set by the outer guard for one tools/call; the inner wrapper marks it when the call reached it.
_REACHED_HANDLER: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "auditel_mcp_reached", default=None
)


def _server_attributes(ctx: Any, runner: Any) -> dict[str, Any]:
    server = getattr(runner, "server", None)
    attrs = {
        "mcp.method.name": "tools/call",
        "audit.framework": FRAMEWORK,
        "audit.mcp.side": "server",
        "audit.mcp.server.name": getattr(server, "name", None),
        "jsonrpc.request.id": None if ctx.request_id is None else str(ctx.request_id),
        "mcp.protocol.version": getattr(ctx, "protocol_version", None),
    }
    return {k: v for k, v in attrs.items() if v is not None}


def _record_rejection(ctx: Any, runner: Any, error: BaseException | None, result: Any) -> None:
    """The server's own layer (a middleware: auth, validation, rate limit) answered a tools/call
    without reaching the tool handler: record what was asked and that the server refused it."""
    try:
        params = ctx.params or {}
        run = ToolRun(
            str(params.get("name")),
            arguments=params.get("arguments") or {},
            tool_type="extension",
            attributes={**_server_attributes(ctx, runner), "audit.mcp.handled_by": "server_layer"},
        )
        run.start()
        if error is not None:
            run.finish(
                error=_error_code(error) if hasattr(error, "error") else error,
                outcome="denied",
                reason="rejected by the server before the tool handler ran",
            )
        else:
            is_error = isinstance(result, Mapping) and result.get("isError") is True
            run.finish(
                result=_result_content(result),
                outcome="denied" if is_error else "success",
                error="tool_error" if is_error else None,
                reason="answered by the server without running the tool handler",
            )
    except Exception as exc:  # noqa: BLE001
        count_error("mcp", exc)


def _rejection_guard(chain: Any, runner: Any) -> Any:
    async def call(ctx: Any) -> Any:
        if getattr(ctx, "method", None) != "tools/call" or not recording_enabled():
            return await chain(ctx)
        reached = [False]
        token = _REACHED_HANDLER.set(reached)
        try:
            result = await chain(ctx)
        except BaseException as exc:
            if not reached[0] and not _is_cancel(exc):
                _record_rejection(ctx, runner, exc, None)
            raise
        finally:
            _REACHED_HANDLER.reset(token)
        if not reached[0]:
            _record_rejection(ctx, runner, None, result)
        return result

    return call


def _audited_inner(inner: Any, runner: Any) -> Any:
    async def call(ctx: Any) -> Any:
        if getattr(ctx, "method", None) != "tools/call" or not recording_enabled():
            return await inner(ctx)
        reached = _REACHED_HANDLER.get()
        if reached is not None:
            reached[0] = True
        run: ToolRun | None = None
        try:
            params = ctx.params or {}
            server = getattr(runner, "server", None)
            run = ToolRun(
                str(params.get("name")),
                arguments=params.get("arguments") or {},
                tool_type="extension",
                attributes=_server_attributes(ctx, runner),
            )
            current = trace.get_current_span()
            if _has_sdk_middleware(server) and current.get_span_context().is_valid:
                run.adopt_span(current)
            else:
                meta = _meta_dict(getattr(ctx, "meta", None))
                parent = propagate.extract(meta) if meta else None
                if parent is not None and not trace.get_current_span(parent).get_span_context().is_valid:
                    parent = None
                run.start_span(
                    f"tools/call {run.tool_name}",
                    kind=SpanKind.SERVER,
                    parent=parent,
                    extra={"mcp.method.name": "tools/call"},
                )
            run.start()
        except Exception as exc:  # noqa: BLE001
            count_error("mcp", exc)
        if run is None:
            return await inner(ctx)
        token = _SERVER_RUN.set(run)
        try:
            with run.active():
                result = await inner(ctx)
        except BaseException as exc:
            run.finish(
                error=_error_code(exc) if hasattr(exc, "error") else exc, outcome="unknown" if _is_cancel(exc) else None
            )
            raise
        finally:
            _SERVER_RUN.reset(token)
        try:
            is_error = isinstance(result, Mapping) and result.get("isError") is True
            error = (run.error_hint or "tool_error") if is_error else None
            run.finish(result=_result_content(result), outcome="failure" if is_error else "success", error=error)
        except Exception as exc:  # noqa: BLE001
            count_error("mcp", exc)
        return result

    return call


def _compose(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Our run sits innermost (inside the SDK's span middleware, around the handler); a guard sits
    outermost, so a call refused by any middleware before the handler still leaves a record."""
    if args:
        chain = wrapped(_audited_inner(args[0], instance), *args[1:], **kwargs)
    else:
        chain = wrapped(_audited_inner(kwargs.pop("inner"), instance), **kwargs)
    return _rejection_guard(chain, instance)


async def _mcpserver_call_tool(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``MCPServer.call_tool`` turns exceptions into ``isError`` results: keep the real error type."""
    try:
        return await wrapped(*args, **kwargs)
    except BaseException as exc:
        run = _SERVER_RUN.get()
        if run is not None:
            cause = exc.__cause__ if type(exc).__name__ == "UnexpectedToolError" and exc.__cause__ else exc
            run.error_hint = type(cause).__qualname__
        raise


# --- stdio servers ------------------------------------------------------------------------------
def _server_environment(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``mcp.client.stdio.get_default_environment``: add auditel's and OTel's settings (see
    ``auditel.config.child_env``), so a stdio server started by an audited client is audited too."""
    env = wrapped(*args, **kwargs)
    try:
        if not recording_enabled() or not child_env.inherit_enabled():
            return env
        import auditel._bootstrap as bootstrap_pkg
        from auditel import runtime

        rt = runtime.current()
        added = child_env.audited_child_environment(
            rt.settings.outbox if rt is not None else None, os.path.dirname(os.path.abspath(bootstrap_pkg.__file__))
        )
        return {**env, **added}
    except Exception as exc:  # noqa: BLE001 - the server still starts, with the SDK's environment
        count_error("mcp", exc)
        return env


class MCPInstrumentor(PatchingInstrumentor):
    """``auditel_mcp``: MCP client tool calls and discovery, server tool handlers."""

    requirements = ("mcp >= 2.0",)
    patch_kind = "mcp"

    def _apply(self, p: Patcher) -> None:
        p.patch("mcp.client.session", "ClientSession.call_tool", _call_tool)
        p.patch("mcp.client.session", "ClientSession.list_tools", _list_tools)
        p.patch("mcp.shared.jsonrpc_dispatcher", "otel_span", _sdk_span)
        p.patch("mcp.server.runner", "ServerRunner._compose_server_middleware", _compose)
        p.patch("mcp.server.mcpserver.server", "MCPServer.call_tool", _mcpserver_call_tool)
        p.patch("mcp.client.stdio", "get_default_environment", _server_environment)


__all__ = ["MCPInstrumentor", "UNSET"]
