"""``audited``: decorator and context manager that times an action and records its outcome.

* ``kind="action"`` (default): one ``auditel.action`` record when the action ends.
* ``kind="tool"`` (``auditel.tool(...)``): an *intent* record before the tool runs (so a
  crash inside the tool still leaves evidence) and an *outcome* record after it.

Works on sync functions, coroutines, generators and async generators. The wrapped call's
return value and exception pass through unchanged; auditel's own failures are counted,
never raised. An optional ``policy`` callable can deny a tool before it runs: the record then
holds the intent, the policy decision and a ``denied`` outcome, and ``ToolDenied`` is raised
instead of running the tool.
"""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any, Callable, Mapping, TypeVar

from . import api
from . import runtime as _rt
from . import schema as S
from .ids import new_record_id

F = TypeVar("F", bound=Callable[..., Any])
_UNSET = api._UNSET

PolicyResult = Any  # "allow" | "deny" | (verdict, reason) | {"verdict":..., "reason":..., "policy_id":..., "rule_id":...}


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
        arguments: Any = _UNSET,
        call_id: str | None = None,
        policy: Callable[[str, Any], PolicyResult] | None = None,
        capture_result: bool = True,
    ) -> None:
        self.name = name
        self.kind = kind
        self.attributes: dict[str, Any] = dict(attributes or {})
        self.arguments = arguments
        self.call_id = call_id
        self.policy = policy
        self.capture_result = capture_result
        self.result: Any = _UNSET
        self.outcome: str | None = None
        self.correlation_id = new_record_id()
        self._t0 = 0.0
        self.intent_record_id: str | None = None
        self.outcome_record_id: str | None = None

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_result(self, value: Any) -> None:
        self.result = value

    def set_outcome(self, outcome: str) -> None:
        self.outcome = outcome

    # -- lifecycle --
    def start(self) -> None:
        self._t0 = time.perf_counter()
        if self.kind != "tool":
            return
        try:
            self.intent_record_id = api.tool_call(
                self.name,
                phase="intent",
                call_id=self.call_id,
                arguments=self.arguments,
                correlation_id=self.correlation_id,
                attributes=self.attributes,
            )
        except Exception as exc:  # noqa: BLE001
            _count("audited", exc)
        if self.policy is not None:
            self._check_policy()

    def _check_policy(self) -> None:
        try:
            decision = self.policy(self.name, None if self.arguments is _UNSET else self.arguments)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - a broken policy is an auditel failure, not the host's
            _count("policy", exc)
            return
        verdict, reason, extra = _parse_decision(decision)
        api.policy_decision(
            verdict,
            reason=reason,
            action="tool.call",
            tool_name=self.name,
            call_id=self.call_id,
            correlation_id=self.correlation_id,
            policy_id=extra.get("policy_id"),
            rule_id=extra.get("rule_id"),
        )
        if verdict == "deny":
            self.outcome = "denied"
            self._record_outcome(None, denied_reason=reason)
            raise ToolDenied(self.name, reason)

    def finish(self, exc: BaseException | None) -> None:
        if self.outcome_record_id is not None:
            return
        self._record_outcome(exc)

    def _record_outcome(self, exc: BaseException | None, denied_reason: str | None = None) -> None:
        duration_ms = (time.perf_counter() - self._t0) * 1000.0
        outcome = self.outcome or ("failure" if exc is not None else "success")
        if isinstance(exc, ToolDenied):
            outcome = "denied"
        try:
            if self.kind == "tool":
                attrs = dict(self.attributes)
                if denied_reason:
                    attrs[S.A_REASON] = denied_reason
                self.outcome_record_id = api.tool_call(
                    self.name,
                    phase="outcome",
                    call_id=self.call_id,
                    result=self.result if (self.capture_result and exc is None) else _UNSET,
                    outcome=outcome,
                    error=exc,
                    duration_ms=round(duration_ms, 3),
                    correlation_id=self.correlation_id,
                    attributes=attrs,
                )
            else:
                rt = _rt.current()
                if rt is None:
                    return
                attrs = {
                    S.A_ACTION: self.name,
                    S.A_OUTCOME: outcome,
                    S.A_DURATION_MS: round(duration_ms, 3),
                }
                if self.arguments is not _UNSET:
                    api.content_attributes(rt, attrs, self.arguments, digest_key=S.A_ARGS_DIGEST, size_key=S.A_ARGS_SIZE, content_key=None)
                if self.result is not _UNSET and self.capture_result and exc is None:
                    api.content_attributes(rt, attrs, self.result, digest_key=S.A_RESULT_DIGEST, size_key=S.A_RESULT_SIZE, content_key=None)
                api._error_attrs(rt, attrs, exc)
                self.outcome_record_id = rt.emit(
                    S.EV_ACTION, api._merge(attrs, self.attributes), None, "error" if outcome == "failure" else "info"
                )
        except Exception as err:  # noqa: BLE001
            _count("audited", err)


def _parse_decision(decision: PolicyResult) -> tuple[str, str | None, dict[str, Any]]:
    if isinstance(decision, bool):
        return ("allow" if decision else "deny"), None, {}
    if isinstance(decision, str):
        return decision.lower(), None, {}
    if isinstance(decision, tuple) and decision:
        return str(decision[0]).lower(), (str(decision[1]) if len(decision) > 1 and decision[1] is not None else None), {}
    if isinstance(decision, Mapping):
        return str(decision.get("verdict", "allow")).lower(), decision.get("reason"), dict(decision)
    return "allow", None, {}


def _count(kind: str, exc: BaseException) -> None:
    rt = _rt.current()
    if rt is not None:
        rt.counters.error(kind, exc)


class audited:
    """``@audited``, ``@audited("name", kind="tool")`` or ``with audited("name") as scope:``."""

    def __init__(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        kind: str = "action",
        attributes: Mapping[str, Any] | None = None,
        capture_arguments: bool = True,
        capture_result: bool = True,
        policy: Callable[[str, Any], PolicyResult] | None = None,
        call_id: str | None = None,
    ) -> None:
        self._fn: Callable[..., Any] | None = None
        if callable(name) and not isinstance(name, str):
            self._fn = name
            name = None
        self.name = name
        self.kind = kind
        self.attributes = attributes
        self.capture_arguments = capture_arguments
        self.capture_result = capture_result
        self.policy = policy
        self.call_id = call_id
        self._scope: AuditScope | None = None
        if self._fn is not None:
            self._wrapped = self._decorate(self._fn)
            functools.update_wrapper(self, self._fn)

    # used as @audited without parentheses: the instance is the wrapper
    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if self._fn is None or obj is None:
            return self
        return functools.partial(self._wrapped, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._fn is not None:
            return self._wrapped(*args, **kwargs)
        (fn,) = args
        return self._decorate(fn)

    # -- context manager --
    def _new_scope(self, name: str, arguments: Any = _UNSET) -> AuditScope:
        return AuditScope(
            name,
            self.kind,
            self.attributes,
            arguments=arguments,
            call_id=self.call_id or (new_record_id() if self.kind == "tool" else None),
            policy=self.policy,
            capture_result=self.capture_result,
        )

    def __enter__(self) -> AuditScope:
        self._scope = self._new_scope(self.name or "action")
        self._scope.start()
        return self._scope

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        scope, self._scope = self._scope, None
        if scope is not None:
            scope.finish(exc)

    async def __aenter__(self) -> AuditScope:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator --
    def _decorate(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        name = self.name or getattr(fn, "__qualname__", getattr(fn, "__name__", "action"))
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None

        def arguments_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if not self.capture_arguments:
                return _UNSET
            try:
                if signature is not None:
                    bound = signature.bind_partial(*args, **kwargs)
                    return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}
            except TypeError:
                pass
            return {"args": list(args), "kwargs": kwargs}

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                scope = self._new_scope(name, arguments_of(args, kwargs))
                scope.start()
                count = 0
                try:
                    async for item in fn(*args, **kwargs):
                        count += 1
                        yield item
                except BaseException as exc:
                    scope.set_attribute("audit.result.items", count)
                    scope.finish(exc)
                    raise
                scope.set_attribute("audit.result.items", count)
                scope.finish(None)

            return agen_wrapper

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                scope = self._new_scope(name, arguments_of(args, kwargs))
                scope.start()
                count = 0
                try:
                    for item in fn(*args, **kwargs):
                        count += 1
                        yield item
                except BaseException as exc:
                    scope.set_attribute("audit.result.items", count)
                    scope.finish(exc)
                    raise
                scope.set_attribute("audit.result.items", count)
                scope.finish(None)

            return gen_wrapper

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                scope = self._new_scope(name, arguments_of(args, kwargs))
                scope.start()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    scope.finish(exc)
                    raise
                scope.result = result
                scope.finish(None)
                return result

            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = self._new_scope(name, arguments_of(args, kwargs))
            scope.start()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                scope.finish(exc)
                raise
            scope.result = result
            scope.finish(None)
            return result

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
        name,
        kind="tool",
        attributes=attributes,
        policy=policy,
        capture_arguments=capture_arguments,
        capture_result=capture_result,
    )
