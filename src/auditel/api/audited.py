"""``audited``: decorator and context manager that times an action and records its outcome.

* ``kind="action"`` (default): one ``auditel.action`` record when the action ends.
* ``kind="tool"`` (``auditel.tool(...)``): an ``execute_tool {name}`` span, an *intent* record
  before the tool runs (so a crash inside the tool still leaves evidence) and an *outcome* record
  after it, linked by ``audit.correlation.id``.

Works on sync functions, coroutines, generators and async generators (``send``/``throw``/``close``
and return values are forwarded; a generator closed early is a ``success`` with
``audit.result.complete=false``). The decorated function keeps its kind, so
``inspect.iscoroutinefunction`` and friends still answer correctly. The wrapped call's return value
and exception pass through unchanged; auditel's own failures are counted, never raised.

An optional ``policy(name, arguments)`` decides before the tool runs. It may return ``True``/
``False``, a verdict string (allow/deny/modify/warn/escalate), ``(verdict, reason)`` or a mapping
``{"verdict", "reason", "policy_id", "rule_id"}``. Every verdict is recorded as an
``auditel.policy_decision`` (verdict kept apart from the action taken). On ``deny`` the tool does
not run: the record holds the intent, the decision and a ``denied`` outcome, and ``ToolDenied`` is
raised. A policy that raises is recorded as verdict ``warn`` (reason ``policy_error:<Type>``) and the
tool runs: a broken policy is reported, never turned into an outage.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from auditel import runtime as _rt
from auditel.api import helpers as api
from auditel.api.guard import count_failure, guarded
from auditel.api.runs import ToolRun, wrap_async_generator, wrap_generator
from auditel.record import events as E
from auditel.record.events import UNSET
from auditel.record.ids import new_record_id

F = TypeVar("F", bound=Callable[..., Any])

PolicyResult = (
    Any  # "allow" | "deny" | (verdict, reason) | {"verdict":..., "reason":..., "policy_id":..., "rule_id":...}
)

_VERDICT_ALIASES = {
    "allowed": "allow",
    "ok": "allow",
    "pass": "allow",
    "permit": "allow",
    "denied": "deny",
    "block": "deny",
    "blocked": "deny",
    "reject": "deny",
    "rejected": "deny",
    "forbid": "deny",
    "warning": "warn",
    "modified": "modify",
    "escalated": "escalate",
}


class ToolDenied(PermissionError):
    """Raised instead of running a tool that a policy denied."""

    def __init__(self, tool: str, reason: str | None = None) -> None:
        super().__init__(f"tool {tool!r} denied by policy" + (f": {reason}" if reason else ""))
        self.tool = tool
        self.reason = reason


class AuditScope:
    """One audited action in progress; lets the body add facts before it is recorded."""

    def __init__(
        self,
        name: str,
        kind: str,
        attributes: Mapping[str, Any] | None,
        *,
        arguments: Any = UNSET,
        call_id: str | None = None,
        policy: Callable[[str, Any], PolicyResult] | None = None,
        capture_result: bool = True,
    ) -> None:
        self.name = E.text(name, 256)
        self.kind = kind
        self.attributes: dict[str, Any] = E.attribute_dict(attributes)
        self.arguments = arguments
        self.call_id = call_id
        self.policy = policy
        self.capture_result = capture_result
        self.result: Any = UNSET
        self.outcome: str | None = None
        self._t0 = 0.0
        self._tool: ToolRun | None = None
        self.correlation_id = new_record_id()
        if kind == "tool" and call_id is None:
            self.call_id = call_id = self.correlation_id  # no model-given call id: one id names the call
        self.outcome_record_id: str | None = None
        if kind == "tool":
            self._tool = ToolRun(
                self.name,
                call_id=call_id,
                arguments=arguments,
                attributes=self.attributes,
                correlation_id=self.correlation_id,
            )

    @property
    def intent_record_id(self) -> str | None:
        return self._tool.intent_record_id if self._tool is not None else None

    @guarded("AuditScope.set_attribute")
    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key if type(key) is str else E.text(key, 256)] = value

    @guarded("AuditScope.set_result")
    def set_result(self, value: Any) -> None:
        self.result = value

    @guarded("AuditScope.set_outcome")
    def set_outcome(self, outcome: str) -> None:
        self.outcome = None if outcome is None else E.text(outcome, 64)

    # -- lifecycle --
    def start(self) -> None:
        """Intent record (tools); then the policy, which may raise ``ToolDenied``."""
        self._t0 = time.perf_counter()
        if self._tool is None:
            return
        try:
            self._tool.start_span()
            self._tool.start()
            if self._tool.continues:  # a framework's span committed this call's intent (span bridge)
                self.correlation_id = self._tool.correlation_id
                self.call_id = self._tool.call_id
        except Exception as exc:  # noqa: BLE001
            _count("audited", exc)
        if self.policy is not None:
            self._check_policy()

    def active(self) -> AbstractContextManager[None]:
        """The tool's span is current while the body runs.

        The run's own context manager, not a ``@contextmanager`` generator around it: a tool call
        enters this once per step, and a generator frame per entry is a measurable share of it."""
        if self._tool is None:
            return nullcontext()
        return self._tool.active()

    def _check_policy(self) -> None:
        extra: dict[str, Any] = {}
        try:
            decision = self.policy(self.name, None if self.arguments is UNSET else self.arguments)  # type: ignore[misc]
            verdict, reason, extra = _parse_decision(decision)
        except Exception as exc:  # noqa: BLE001 - a broken policy is reported, not turned into an outage
            _count("policy", exc)
            verdict, reason = "warn", f"policy_error:{type(exc).__qualname__}"
        try:
            with self.active():
                api.policy_decision(
                    verdict,
                    reason=reason,
                    action="tool.call",
                    tool_name=self.name,
                    call_id=self.call_id,
                    correlation_id=self.correlation_id,
                    policy_id=extra.get("policy_id"),
                    rule_id=extra.get("rule_id"),
                    action_taken="allowed" if verdict == "escalate" else None,
                )
        except Exception as exc:  # noqa: BLE001
            _count("policy", exc)
        if verdict == "deny":
            self.outcome = "denied"
            self._record_outcome(None, denied_reason=reason)
            raise ToolDenied(self.name, reason)

    def _returned(self, result: Any) -> Any:
        """The body returned ``result``: record it (as captured) with the outcome; give it back."""
        self.result = result
        self.finish(None)
        return result

    def finish(self, exc: BaseException | None) -> None:
        if self.outcome_record_id is not None or (self._tool is not None and self._tool.outcome_record_id is not None):
            return
        self._record_outcome(exc)

    def _record_outcome(self, exc: BaseException | None, denied_reason: str | None = None) -> None:
        outcome = self.outcome or ("failure" if exc is not None else "success")
        if isinstance(exc, ToolDenied):
            outcome = "denied"
        try:
            if self._tool is not None:
                self._tool.attributes = dict(self.attributes)
                self._tool.finish(
                    result=self.result if (self.capture_result and exc is None) else UNSET,
                    error=exc,
                    outcome=outcome,
                    reason=denied_reason,
                )
                self.outcome_record_id = self._tool.outcome_record_id
                return
            rt = _rt.current()
            if rt is None:
                return
            name, attrs, severity = E.action(
                rt,
                self.name,
                outcome=outcome,
                started=self._t0,
                arguments=self.arguments,
                result=self.result if (self.capture_result and exc is None) else UNSET,
                error=exc,
                attributes=self.attributes,
            )
            self.outcome_record_id = rt.emit(name, attrs, None, severity)
        except Exception as err:  # noqa: BLE001
            _count("audited", err)


def _parse_decision(decision: PolicyResult) -> tuple[str, str | None, dict[str, Any]]:
    extra: dict[str, Any] = {}
    reason: str | None = None
    if isinstance(decision, bool):
        verdict = "allow" if decision else "deny"
    elif isinstance(decision, str):
        verdict = decision
    elif isinstance(decision, tuple) and decision:
        verdict = str(decision[0])
        reason = str(decision[1]) if len(decision) > 1 and decision[1] is not None else None
    elif isinstance(decision, Mapping):
        verdict = str(decision.get("verdict", "allow"))
        reason = None if decision.get("reason") is None else str(decision.get("reason"))
        extra = dict(decision)
    elif decision is None:
        verdict = "allow"
    else:
        verdict = str(decision)
    verdict = verdict.strip().lower()
    return _VERDICT_ALIASES.get(verdict, verdict), reason, extra


def _count(kind: str, exc: BaseException) -> None:
    count_failure(kind, exc)


_PLAIN_KIND = inspect.Parameter.POSITIONAL_OR_KEYWORD


def _plain_parameters(signature: inspect.Signature | None) -> tuple[str, ...] | None:
    """The parameter names when every parameter can be given by position or by name (no ``*args``,
    ``**kwargs``, positional-only or keyword-only ones): such a call binds without ``inspect``."""
    if signature is None:
        return None
    params = tuple(signature.parameters.values())
    if any(p.kind is not _PLAIN_KIND for p in params):
        return None
    return tuple(p.name for p in params)


def _bind_plain(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """What ``Signature.bind_partial(*args, **kwargs).arguments`` holds, less ``self``/``cls``, for the
    parameters ``_plain_parameters`` accepts (``len(args) <= len(names)``); None when the call is one
    that ``bind_partial`` must judge (a name given twice or not a parameter: it raises)."""
    bound = dict(zip(names, args, strict=False))  # names may outnumber args (bind_partial)
    if kwargs:
        for key in kwargs:
            if key in bound or key not in names:
                return None
        bound.update(kwargs)
        bound = {name: bound[name] for name in names if name in bound}  # bind_partial's order
    if "self" in bound or "cls" in bound:
        bound.pop("self", None)
        bound.pop("cls", None)
    return bound


class _NoScope(AuditScope):
    """Stands in when building the real scope failed (counted): the body runs unaudited-by-this-scope."""

    def __init__(self) -> None:  # noqa: D107 - deliberately builds nothing that could fail
        self.name, self.kind, self.attributes, self.arguments = "action", "action", {}, UNSET
        self.call_id, self.policy, self.capture_result = None, None, False
        self.result, self.outcome, self._t0, self._tool = UNSET, None, 0.0, None
        self.correlation_id, self.outcome_record_id = "", None

    def start(self) -> None:
        pass

    def finish(self, exc: BaseException | None) -> None:
        pass


class audited:
    """``@audited``, ``@audited("name", kind="tool")`` or ``with audited("name") as scope:``.

    Used bare (``@audited`` / ``@auditel.tool``) it returns the decorated function itself, of the
    same kind (coroutine function, generator function...) as the original.
    """

    def __new__(cls, name: Any = None, **kwargs: Any) -> Any:
        if callable(name) and not isinstance(name, str):
            self = super().__new__(cls)
            self.__init__(None, **kwargs)  # type: ignore[misc]
            return self._decorate(name)
        return super().__new__(cls)

    def __init__(
        self,
        name: str | None = None,
        *,
        kind: str = "action",
        attributes: Mapping[str, Any] | None = None,
        capture_arguments: bool = True,
        capture_result: bool = True,
        policy: Callable[[str, Any], PolicyResult] | None = None,
        call_id: str | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.attributes = attributes
        self.capture_arguments = capture_arguments
        self.capture_result = capture_result
        self.policy = policy
        self.call_id = call_id
        # scopes opened by ``with``: per context, so one instance can be shared by threads and tasks
        self._scopes: contextvars.ContextVar[tuple[AuditScope, ...]] = contextvars.ContextVar(
            "auditel_scopes", default=()
        )

    def __call__(self, fn: F) -> F:
        return self._decorate(fn)  # type: ignore[return-value]

    # -- context manager --
    def _new_scope(self, name: str, arguments: Any = UNSET) -> AuditScope:
        """The scope of one call; never raises (a failure gives a scope that records nothing)."""
        try:
            return AuditScope(
                name,
                self.kind,
                self.attributes,
                arguments=arguments,
                call_id=self.call_id,
                policy=self.policy,
                capture_result=self.capture_result,
            )
        except Exception as exc:  # noqa: BLE001
            _count("audited", exc)
            return _NoScope()

    def __enter__(self) -> AuditScope:
        scope = self._new_scope(self.name or "action")
        scope.start()  # may raise ToolDenied: then the body never runs and the outcome is recorded
        self._scopes.set(self._scopes.get() + (scope,))
        return scope

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        stack = self._scopes.get()
        if stack:
            self._scopes.set(stack[:-1])
            stack[-1].finish(exc)

    async def __aenter__(self) -> AuditScope:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator --
    def _decorate(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """The wrapper of ``fn``; if auditel cannot build one, ``fn`` itself (counted), never an error."""
        try:
            return self._wrap(fn)
        except Exception as exc:  # noqa: BLE001 - the API boundary: decorating never raises
            _count("audited", exc)
            return fn

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        name = self.name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or "action"
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None
        plain = _plain_parameters(signature)

        def arguments_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if not self.capture_arguments:
                return UNSET
            if plain is not None and len(args) <= len(plain):
                named = _bind_plain(plain, args, kwargs)
                if named is not None:
                    return named
            try:
                if signature is not None:
                    bound = signature.bind_partial(*args, **kwargs)
                    return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}
            except TypeError:
                pass
            return {"args": list(args), "kwargs": kwargs}

        def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AuditScope:
            scope = self._new_scope(name, arguments_of(args, kwargs))
            scope.start()  # may raise ToolDenied: then the body never runs and the outcome is recorded
            return scope

        def generator_end(scope: AuditScope) -> Callable[[BaseException | None, bool, int], None]:
            def end(error: BaseException | None, complete: bool, items: int) -> None:
                scope.set_attribute("audit.result.items", items)
                if not complete and error is None:
                    scope.set_attribute("audit.result.complete", False)
                scope.finish(error)

            return end

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                scope = begin(args, kwargs)
                inner = wrap_async_generator(fn(*args, **kwargs), scope.active, generator_end(scope))
                step: Any = inner.asend
                value: Any = None
                try:
                    while True:
                        try:
                            item = await step(value)
                        except StopAsyncIteration:
                            return
                        try:
                            value, step = (yield item), inner.asend
                        except GeneratorExit:
                            raise
                        except BaseException as thrown:  # noqa: BLE001 - forwarded into the tool
                            value, step = thrown, inner.athrow
                finally:
                    await inner.aclose()

            return agen_wrapper

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                scope = begin(args, kwargs)
                return (yield from wrap_generator(fn(*args, **kwargs), scope.active, generator_end(scope)))

            return gen_wrapper

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                scope = begin(args, kwargs)
                try:
                    with scope.active():
                        result = await fn(*args, **kwargs)
                except BaseException as exc:
                    scope.finish(exc)
                    raise
                return scope._returned(result)

            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = begin(args, kwargs)
            try:
                with scope.active():
                    result = fn(*args, **kwargs)
            except BaseException as exc:
                scope.finish(exc)
                raise
            return scope._returned(result)

        return sync_wrapper


def tool(
    name: str | Callable[..., Any] | None = None,
    *,
    attributes: Mapping[str, Any] | None = None,
    policy: Callable[[str, Any], PolicyResult] | None = None,
    capture_arguments: bool = True,
    capture_result: bool = True,
) -> Any:
    """``audited(kind="tool")``: intent before, outcome after; optional ``policy`` may deny."""
    return audited(
        name,  # type: ignore[arg-type]  # a function here is the bare ``@auditel.tool`` form (see __new__)
        kind="tool",
        attributes=attributes,
        policy=policy,
        capture_arguments=capture_arguments,
        capture_result=capture_result,
    )
