"""One action, one record: the state the bridge keeps about open spans.

The rule (docs/frameworks.md):

1. auditel's own instrumentation wins: spans of the ``auditel`` scope are never mapped (auditel
   already recorded them), and a mapped span nested inside one of them, or enclosing one, for the
   same action is counted as deduplicated.
2. Model calls (one record on end): the innermost span records; an enclosing model-call span is
   deduplicated (a framework's ``chat`` span around a client library's ``chat`` span around the
   SDK call). Children end before their parents, so the mark "covered" climbs from the innermost.
3. Tool calls and agent runs (intent on start, so the decision is made at start): the outermost
   span records; a nested span for the same tool (same name, or same tool-call id) or the same
   agent (same name) is deduplicated, and its facts (call id, result) enrich the outcome record.
4. auditel's own tool call (``@auditel.tool``, auditel's MCP client) *inside* a framework's tool
   span for the same tool, whose intent the bridge already committed: the own call *continues* that
   action instead of starting a second one. Its span is offered the framework's action on start;
   auditel's ``ToolRun`` claims it (``auditel.spans.attach.claim``), writes no intent of its own,
   takes the action's correlation id (and call id), and writes the outcome (it sees the function's
   real result or exception); the framework span's outcome is then deduplicated. One intent, one
   outcome, one correlation id. Unclaimed (the own span was not a ``ToolRun``'s), nothing changes.

Everything is keyed by span id; entries are removed when the span ends. The maps are bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditel.spans.conventions import MISSING, Facts

MAX_OPEN = 100_000  # open spans tracked at once; beyond, the maps are cleared (counted)


@dataclass(eq=False)
class Action:
    """An open action that nested spans may duplicate."""

    kind: str
    name: str | None
    own: bool  # auditel's own instrumentation records it
    outer: Action | None = None
    call_id: str | None = None
    correlation_id: str | None = None
    facts: Facts | None = None
    intent_written: bool = False
    intent_id: str | None = None  # the intent record's id (for an own tool call that continues it)
    claimed: bool = False  # auditel's own tool call inside continues this action (rule 4)
    span: Any = None  # the framework's span while it is open (rule 4 reads facts set after its start)
    enrich: dict[str, Any] = field(default_factory=dict)

    def same(self, kind: str, name: str | None, call_id: str | None) -> bool:
        if kind != self.kind:
            return False
        if call_id is not None and self.call_id is not None:
            return call_id == self.call_id
        if kind == "model_call":
            return True
        if name is None or self.name is None:
            return False
        # "get_weather" is "module.get_weather" / "f.<locals>.get_weather" (auditel names a wrapped
        # function by its qualified name; frameworks by the tool name)
        return same_tool_name(name, self.name)


def find(chain: Action | None, kind: str, name: str | None, call_id: str | None) -> Action | None:
    """The nearest enclosing action that is the same action (walks outwards, a few steps at most)."""
    depth = 0
    while chain is not None and depth < 64:
        if chain.same(kind, name, call_id):
            return chain
        chain = chain.outer
        depth += 1
    return None


def same_tool_name(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and (a == b or a.rsplit(".", 1)[-1] == b.rsplit(".", 1)[-1])


def joinable(chain: Action | None, name: str | None) -> Action | None:
    """The framework tool action an own tool call named ``name`` continues (rule 4), or None.

    The nearest enclosing tool action only, and only by name: auditel's own call id is its own
    correlation id when the caller gave none, so it cannot match the model's call id.
    """
    depth = 0
    while chain is not None and depth < 64:
        if chain.kind == "tool_call":
            if chain.own or chain.claimed or not chain.intent_written or not same_tool_name(name, chain.name):
                return None
            return chain
        chain = chain.outer
        depth += 1
    return None


def merge_into(action: Action, facts: Facts) -> None:
    """Facts a nested duplicate saw that the recording span lacks (call id, result, MCP side...)."""
    if action.call_id is None and facts.call_id is not None:
        action.call_id = facts.call_id
        action.enrich["call_id"] = facts.call_id
    if facts.result is not MISSING and "result" not in action.enrich:
        action.enrich["result"] = facts.result
    for key, value in facts.extra.items():
        action.enrich.setdefault("extra", {}).setdefault(key, value)
