"""``AuditSpanProcessor``: an OTel SpanProcessor that turns GenAI spans into audit records.

Runs on the thread that starts/ends the span; records are committed before ``on_start`` /
``on_end`` return (so before the framework's call returns). A span that is not a GenAI action
costs a few dictionary look-ups. Never raises: failures are counted in ``status()``.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanKind, StatusCode

from auditel.api import helpers
from auditel.config.spans import SpanBridgeSettings
from auditel.record import schema as S
from auditel.record.ids import new_record_id
from auditel.spans import conventions as C
from auditel.spans.dedup import MAX_OPEN, Action, find, joinable, merge_into

_OWN_SCOPE = S.SCOPE_NAME
_SIDES = {
    SpanKind.CLIENT: "client",
    SpanKind.SERVER: "server",
    SpanKind.INTERNAL: "internal",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}


def _attrs(span: Any) -> Any:
    """The span's attributes as a plain dict when the SDK keeps one (``span.attributes`` is a
    mappingproxy over BoundedAttributes, whose ``in`` costs a caught KeyError per missing key);
    otherwise the public mapping."""
    bounded = getattr(span, "_attributes", None)
    d = getattr(bounded, "_dict", None)
    if type(d) is dict:
        return d
    return span.attributes


class AuditSpanProcessor(SpanProcessor):
    """Add to a TracerProvider (``auditel.spans.attach.attach_to``); bound to one auditel runtime at a time."""

    def __init__(self, settings: SpanBridgeSettings | None = None) -> None:
        self.settings = settings or SpanBridgeSettings()
        self.runtime: Any = None
        self.seen = 0
        self.mapped = 0
        self.skipped = 0
        self.deduplicated = 0
        self.errors = 0
        self._enclosing: dict[int, Action] = {}  # span id -> nearest enclosing tool/agent/own action
        self._open: dict[int, Action] = {}  # span id -> the action this span records
        self._dups: dict[int, Action] = {}  # span id -> the action this span duplicates
        self._covered: dict[int, bool] = {}  # span id -> a model call below it was recorded
        self._offers: dict[int, Action] = {}  # own tool span id -> the framework action it may continue
        self._lock = threading.Lock()

    # --- binding ---------------------------------------------------------------------------
    def bind(self, runtime: Any, settings: SpanBridgeSettings) -> None:
        self.settings = settings
        self.seen = self.mapped = self.skipped = self.deduplicated = self.errors = 0  # counts per runtime
        self.runtime = runtime

    def unbind(self, runtime: Any) -> None:
        if self.runtime is runtime:
            self.runtime = None

    def snapshot(self) -> dict[str, int]:
        return {
            "seen": self.seen,
            "mapped": self.mapped,
            "skipped": self.skipped,
            "deduplicated": self.deduplicated,
            "errors": self.errors,
            "open": len(self._enclosing) + len(self._open),
        }

    # --- SpanProcessor ---------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        if self.runtime is None:
            return
        try:
            parent = span.parent
            # a remote parent (the MCP client's span seen from the server) starts a new action chain
            enc = self._enclosing.get(parent.span_id) if parent is not None and not parent.is_remote else None
            attrs = _attrs(span)
            if not C.is_candidate(attrs):  # the constant-time path of every HTTP/DB/... span
                name = span.name
                if name and name[:13] in C.NAMED_PREFIXES:  # attributes set after start (Strands Agents)
                    self._start(span, enc, C.named_start(name))
                elif enc is not None:
                    self._enclosing[span.context.span_id] = enc
                return
            self._start(span, enc)
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            self._fail(exc)

    def on_end(self, span: ReadableSpan) -> None:
        self.seen += 1
        if self.runtime is None:
            return
        try:
            sid = span.context.span_id
            enc = self._enclosing.pop(sid, None)
            covered = self._covered.pop(sid, False)
            action = self._open.pop(sid, None)
            if action is not None:
                action.span = None
            dup = self._dups.pop(sid, None)
            if action is None and dup is None and not C.is_candidate(_attrs(span)):
                if covered:
                    self._cover_parent(span)
                return
            self._end(span, enc, covered, action, dup)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def claim(self, span_id: int) -> Action | None:
        """Dedup rule 4: auditel's own tool call whose span is ``span_id`` continues the framework's
        tool action offered to it (once); None when there is none. Called by ``ToolRun.start``."""
        if self.runtime is None:
            return None
        action = self._offers.pop(span_id, None)
        if action is None or action.claimed:
            return None
        action.claimed = True
        if action.call_id is None and action.span is not None:
            # a framework that sets its attributes right after the start (Strands) has its call id by now
            facts = self._classify(action.span)
            if facts is not None and facts.call_id is not None:
                action.call_id = facts.call_id
        return action

    def shutdown(self) -> None:
        self.runtime = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # records are committed on the span's thread; nothing is buffered

    # --- mapping ---------------------------------------------------------------------------
    def _not_mapped(self, scope: str) -> bool:
        """Another instrumentation's span that never becomes a record: its scope is not allowed, or
        auditel's own instrumentation of that framework records the action."""
        return scope != _OWN_SCOPE and (not self.settings.scope_allowed(scope) or covered_by_own(scope))

    def _classify(self, span: ReadableSpan, ended: bool = False) -> C.Facts | None:
        facts = C.classify(_attrs(span), span.name or "", _SIDES.get(span.kind, ""))
        if ended and facts is not None:
            C.add_event_content(facts, span.events)  # the older conventions' content events
        return facts

    def _start(self, span: Span, enc: Action | None, named: C.Facts | None = None) -> None:
        sid = span.context.span_id
        scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
        known = C.identify(_attrs(span), span.name or "") if scope == _OWN_SCOPE and named is None else None
        if known is not None:
            # auditel's own model call, tool call or agent run: tracked (for nesting), never mapped,
            # so its content is not read (classify would parse it): a few look-ups per span
            self._own_start(sid, enc, *known)
            return
        if self._not_mapped(scope):  # before classifying: whatever the span is, it is only followed for nesting
            if enc is not None:
                self._enclosing[sid] = enc
            return
        facts = named or self._classify(span)
        if facts is None:
            if enc is not None:
                self._enclosing[sid] = enc
            return
        if scope == _OWN_SCOPE:
            self._own_start(sid, enc, facts.action, facts.name, facts.call_id)
            return
        if facts.action not in (C.TOOL_CALL, C.AGENT_RUN):
            if enc is not None:
                self._enclosing[sid] = enc
            return
        same = find(enc, facts.action, facts.name, facts.call_id)
        if same is not None:
            self._dups[sid] = same
            self._enclosing[sid] = same
            return
        action = Action(facts.action, facts.name, False, enc, facts.call_id, new_record_id(), facts, span=span)
        self._track(sid, action)
        self._open[sid] = action
        if facts.name is not None:  # intent only when the start attributes name the action
            with _span_context(span):
                if facts.action == C.TOOL_CALL:
                    action.intent_id = self._tool_record(span, facts, action, "intent")
                else:
                    self._agent_record(span, facts, action, "intent")
            action.intent_written = True

    def _own_start(self, sid: int, enc: Action | None, kind: str, name: str | None, call_id: str | None) -> None:
        self._track(sid, Action(kind, name, True, enc, call_id))
        if kind == C.TOOL_CALL:
            outer = joinable(enc, name)
            if outer is not None:  # dedup rule 4: offered to the own ToolRun, which may claim it
                if len(self._offers) >= MAX_OPEN:
                    self._offers.clear()
                self._offers[sid] = outer

    def _end(
        self, span: ReadableSpan, enc: Action | None, covered: bool, action: Action | None, dup: Action | None
    ) -> None:
        scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
        if scope == _OWN_SCOPE and action is None:
            kind = C.operation_kind(_attrs(span))
            if kind is not None:  # auditel's own action recorded it: nothing to read
                self._offers.pop(span.context.span_id, None)
                if kind == C.MODEL_CALL or covered:
                    self._cover_parent(span)
                return
        facts = self._classify(span, ended=not self._not_mapped(scope))  # a span only counted: no content read
        if action is not None and action.facts is not None and (facts is None or facts.action != action.kind):
            facts = action.facts  # opened by its name alone and never given its attributes: still closed
            C.add_event_content(facts, span.events)
        if facts is None:
            if covered:
                self._cover_parent(span)
            return
        if scope == _OWN_SCOPE:
            self._offers.pop(span.context.span_id, None)
            if facts.action == C.MODEL_CALL or covered:
                self._cover_parent(span)
            return
        if not self.settings.scope_allowed(scope):
            self.skipped += 1
            if covered:
                self._cover_parent(span)
            return
        if covered_by_own(scope):
            self.deduplicated += 1  # auditel's own instrumentation of that framework records these actions
            self._cover_parent(span)
            return
        if facts.action == C.MODEL_CALL:
            if covered or find(enc, C.MODEL_CALL, None, None) is not None:
                self.deduplicated += 1  # an inner span, or auditel's own around it, recorded this call
            else:
                with _span_context(span):
                    self._model_record(span, facts)
                self.mapped += 1
            self._cover_parent(span)
            return
        if covered:
            self._cover_parent(span)
        if dup is not None:
            merge_into(dup, facts)
            self.deduplicated += 1
            return
        if action is not None and action.claimed:
            self.deduplicated += 1  # auditel's own tool call inside wrote this action's outcome (rule 4)
            return
        if action is None:  # named only at end (or not a candidate at start)
            if facts.action in (C.TOOL_CALL, C.AGENT_RUN):
                same = find(enc, facts.action, facts.name, facts.call_id)
                if same is not None:
                    merge_into(same, facts)
                    self.deduplicated += 1
                    return
            action = Action(facts.action, facts.name, False, enc, facts.call_id, new_record_id(), facts)
        with _span_context(span):
            if facts.action == C.TOOL_CALL:
                self._tool_record(span, facts, action, "outcome")
            elif facts.action == C.AGENT_RUN:
                self._agent_record(span, facts, action, "outcome")
            else:
                self._policy_record(span, facts)
        self.mapped += 1

    def _track(self, sid: int, action: Action) -> None:
        if len(self._enclosing) >= MAX_OPEN:  # spans that never end: forget them rather than grow
            self._enclosing.clear()
            self._fail(RuntimeError("span bridge: too many open spans; dedup state cleared"))
        self._enclosing[sid] = action

    def _cover_parent(self, span: ReadableSpan) -> None:
        parent = span.parent
        if parent is not None and parent.is_valid:
            if len(self._covered) >= MAX_OPEN:
                self._covered.clear()
            self._covered[parent.span_id] = True

    def _fail(self, exc: BaseException) -> None:
        self.errors += 1
        rt = self.runtime
        if rt is not None:
            try:
                rt.counters.error("span_bridge", exc)
            except Exception:  # noqa: BLE001, S110 - counting must never raise
                pass

    # --- records ---------------------------------------------------------------------------
    def _common(self, span: ReadableSpan, facts: C.Facts) -> dict[str, Any]:
        scope = span.instrumentation_scope
        attrs: dict[str, Any] = dict(facts.extra)
        attrs["audit.source"] = scope.name if scope else ""
        if scope is not None and scope.version:
            attrs["audit.source.version"] = scope.version
        attrs["audit.source.convention"] = facts.convention
        return attrs

    @staticmethod
    def _outcome(span: ReadableSpan) -> tuple[str, str | None]:
        status = span.status
        if status is not None and status.status_code is StatusCode.ERROR:
            etype = (span.attributes or {}).get("error.type")
            if etype is None:
                for event in span.events or ():
                    if event.name == "exception":
                        etype = (event.attributes or {}).get("exception.type")
                        break
            return "failure", str(etype) if etype is not None else "error"
        return "success", None

    @staticmethod
    def _duration_ms(span: ReadableSpan) -> float | None:
        if span.start_time and span.end_time:
            return round((span.end_time - span.start_time) / 1e6, 3)
        return None

    def _model_record(self, span: ReadableSpan, facts: C.Facts) -> None:
        outcome, error = self._outcome(span)
        kwargs: dict[str, Any] = {}
        if facts.input_messages is not C.MISSING:
            kwargs["input_messages"] = facts.input_messages
        if facts.output_messages is not C.MISSING:
            kwargs["output_messages"] = facts.output_messages
        helpers.model_call(
            facts.model,
            provider=facts.provider,
            operation=facts.operation or "chat",
            outcome=outcome,
            error=error,
            duration_ms=self._duration_ms(span),
            response_model=facts.response_model,
            response_id=facts.response_id,
            finish_reasons=facts.finish_reasons,
            input_tokens=facts.input_tokens,
            output_tokens=facts.output_tokens,
            attributes=self._common(span, facts),
            **kwargs,
        )

    def _tool_record(self, span: Any, facts: C.Facts, action: Action, phase: str) -> str | None:
        name = facts.name or action.name or span.name or "unknown"
        attrs = self._common(span, facts)
        kwargs: dict[str, Any] = {}
        args = facts.arguments
        if args is C.MISSING and action.facts is not None:
            args = action.facts.arguments
        if args is not C.MISSING:
            kwargs["arguments"] = args
        outcome = error = None
        duration = None
        if phase == "outcome":
            for key, value in action.enrich.get("extra", {}).items():
                attrs.setdefault(key, value)
            result = facts.result if facts.result is not C.MISSING else action.enrich.get("result", C.MISSING)
            if result is not C.MISSING:
                kwargs["result"] = result
            outcome, error = self._outcome(span)
            duration = self._duration_ms(span)
        return helpers.tool_call(
            name,
            phase=phase,
            call_id=facts.call_id or action.call_id,
            outcome=outcome,
            error=error,
            duration_ms=duration,
            tool_type=(facts.extra.get("gen_ai.tool.type")),
            correlation_id=action.correlation_id,
            attributes=attrs,
            **kwargs,
        )

    def _agent_record(self, span: Any, facts: C.Facts, action: Action, phase: str) -> None:
        rt = self.runtime
        if rt is None:
            return
        attrs = self._common(span, facts)
        attrs.update(
            {
                S.A_ACTION: "agent.run",
                S.A_PHASE: phase,
                S.GEN_AI_OPERATION: facts.operation or "invoke_agent",
                S.GEN_AI_AGENT_NAME: facts.name or action.name,
                S.A_TARGET_TYPE: "agent",
                S.A_TARGET_ID: facts.name or action.name,
                S.A_CORRELATION_ID: action.correlation_id,
            }
        )
        severity = "info"
        if phase == "outcome":
            outcome, error = self._outcome(span)
            attrs[S.A_OUTCOME] = outcome
            attrs[S.A_DURATION_MS] = self._duration_ms(span)
            if error is not None:
                attrs[S.A_ERROR_TYPE] = error
                severity = "error"
        rt.emit(S.EV_AGENT_RUN, {k: v for k, v in attrs.items() if v is not None}, None, severity)

    def _policy_record(self, span: ReadableSpan, facts: C.Facts) -> None:
        helpers.policy_decision(
            facts.verdict or "unknown",
            policy_id=facts.policy_id,
            reason=facts.reason,
            action_taken=facts.action_taken,
            attributes=self._common(span, facts),
        )


# Instrumentation scopes whose actions auditel's own instrumentation of the same framework records,
# when that instrumentation is on: their spans are siblings of auditel's (each side starts its own
# span from the framework's hooks), so nesting cannot tell they are the same action.
COVERED_SCOPES: dict[str, str] = {
    "mcp-python-sdk": "auditel_mcp",  # the MCP SDK's native client and server spans
    "com.anthropic.sdk.python": "auditel_anthropic",  # the anthropic SDK's native spans
    "openinference.instrumentation.openai_agents": "auditel_openai_agents",
    "opentelemetry.instrumentation.openai_agents": "auditel_openai_agents",
    "openinference.instrumentation.langchain": "auditel_langchain",
    "opentelemetry.instrumentation.langchain": "auditel_langchain",
    "opentelemetry.instrumentation.mcp": "auditel_mcp",
    # the provider SDKs auditel instruments itself (instrumentation/bedrock.py, google_genai.py, litellm.py)
    "opentelemetry.instrumentation.bedrock": "auditel_bedrock",
    "openinference.instrumentation.bedrock": "auditel_bedrock",
    "opentelemetry.instrumentation.botocore": "auditel_bedrock",  # also "….botocore.<service>" (prefix)
    "opentelemetry.instrumentation.google_genai": "auditel_google_genai",
    "opentelemetry.instrumentation.google_generativeai": "auditel_google_genai",
    "openinference.instrumentation.google_genai": "auditel_google_genai",
    "opentelemetry.instrumentation.litellm": "auditel_litellm",
    "openinference.instrumentation.litellm": "auditel_litellm",
}


# auditel instrumentation name -> its instrumentor, or None when it cannot be imported. Instrumentors
# are singletons (``BaseInstrumentor.__new__``), so the object stays valid; whether it is instrumented
# is read from it on every span (someone may uninstrument it directly). Looking it up anew cost an
# import and a constructor call per span of a covered framework (two per MCP tool call).
_INSTRUMENTORS: dict[str, Any] = {}
_UNKNOWN = object()


def covered_by_own(scope: str) -> bool:
    name = COVERED_SCOPES.get(scope)
    if name is None and scope.startswith("opentelemetry.instrumentation.botocore."):
        name = COVERED_SCOPES["opentelemetry.instrumentation.botocore"]
    if name is None:
        return False
    instrumentor = _INSTRUMENTORS.get(name, _UNKNOWN)
    if instrumentor is _UNKNOWN:
        try:
            from auditel import instrumentation

            instrumentor = instrumentation.get_instrumentor(name)
        except Exception:  # noqa: BLE001 - not installed or not importable: not covered
            instrumentor = None
        _INSTRUMENTORS[name] = instrumentor
    try:
        return instrumentor is not None and bool(instrumentor.is_instrumented_by_opentelemetry)
    except Exception:  # noqa: BLE001
        return False


class _span_context:
    """The span's trace context is current while its record is written (records carry its ids).

    A non-recording view of the span: the record is not added back to the span as an event.
    """

    __slots__ = ("_ctx", "_token")

    def __init__(self, span: ReadableSpan) -> None:
        span_context = span.get_span_context() or trace.INVALID_SPAN_CONTEXT
        self._ctx = trace.set_span_in_context(NonRecordingSpan(span_context))
        self._token: Any = None

    def __enter__(self) -> None:
        self._token = otel_context.attach(self._ctx)

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self._token)
