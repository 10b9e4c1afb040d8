"""Names of the audit event schema: event names, attribute keys, severities.

Documented in docs/schema.md. Attribute names reuse the OTel GenAI conventions
(``gen_ai.*``) and the OTel audit-logging proposal (``audit.*``) where they exist.
"""

from __future__ import annotations

from opentelemetry._logs import SeverityNumber

SCHEMA_VERSION = "1"
EVENT_PREFIX = "auditel."
SCOPE_NAME = "auditel"

# --- event names -------------------------------------------------------------
EV_TOOL_CALL = "auditel.tool_call"
EV_TOOL_DISCOVERY = "auditel.tool_discovery"
EV_MODEL_CALL = "auditel.model_call"
EV_POLICY_DECISION = "auditel.policy_decision"
EV_FILE_ACCESS = "auditel.file_access"
EV_NETWORK_ACCESS = "auditel.network_access"
EV_SESSION_START = "auditel.session_start"
EV_SESSION_END = "auditel.session_end"
EV_HEARTBEAT = "auditel.heartbeat"
EV_ACTION = "auditel.action"
EV_AGENT_RUN = "auditel.agent_run"
EV_HANDOFF = "auditel.handoff"
# integrity records: never filtered by AUDITEL_EVENTS
EV_STREAM_START = "auditel.stream.start"
EV_STREAM_END = "auditel.stream.end"
EV_CHECKPOINT = "auditel.checkpoint"
INTEGRITY_EVENTS = frozenset({EV_STREAM_START, EV_STREAM_END, EV_CHECKPOINT})

# --- attribute keys ----------------------------------------------------------
A_SCHEMA_VERSION = "audit.schema.version"
A_RECORD_ID = "audit.record.id"
A_STREAM_ID = "audit.sequence.stream_id"
A_SEQ = "audit.sequence.number"
A_PREV_HASH = "audit.sequence.previous_hash"
A_SEQ_END = "audit.sequence.end"
A_ACTION = "audit.action"
A_OUTCOME = "audit.outcome"
A_PHASE = "audit.phase"  # "intent" | "outcome" for actions recorded in two steps
A_ACTOR_ID = "audit.actor.id"
A_ACTOR_TYPE = "audit.actor.type"
A_PRINCIPAL_ID = "audit.principal.id"
A_TARGET_TYPE = "audit.target.type"
A_TARGET_ID = "audit.target.id"
A_DURATION_MS = "audit.duration_ms"
A_ERROR_TYPE = "error.type"
A_ERROR_MESSAGE = "audit.error.message"
A_REASON = "audit.reason"
A_SESSION_ID = "session.id"
A_ENVIRONMENT = "deployment.environment.name"
A_CORRELATION_ID = "audit.correlation.id"  # links intent and outcome records of one action

# content digests (default content mode): keyed HMAC-SHA256 and sizes, never plain hashes
A_ARGS_DIGEST = "audit.arguments.digest"
A_ARGS_SIZE = "audit.arguments.size"
A_RESULT_DIGEST = "audit.result.digest"
A_RESULT_SIZE = "audit.result.size"

# policy decisions (GenAI guardrail shape: verdict separate from the action taken)
A_POLICY_ID = "audit.policy.id"
A_POLICY_RULE_ID = "audit.policy.rule_id"
A_POLICY_VERDICT = "audit.policy.verdict"
A_POLICY_ACTION_TAKEN = "audit.policy.action_taken"

# GenAI semantic conventions
GEN_AI_OPERATION = "gen_ai.operation.name"
GEN_AI_PROVIDER = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_ARGS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_RESULT = "gen_ai.tool.call.result"
GEN_AI_AGENT_ID = "gen_ai.agent.id"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"

# attributes that carry message/argument/result content (only where the content mode allows it)
CONTENT_KEYS = frozenset(
    {
        GEN_AI_TOOL_ARGS,
        GEN_AI_TOOL_RESULT,
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "audit.tool_calls.arguments",
        A_ERROR_MESSAGE,
    }
)

OUTCOMES = ("success", "failure", "denied", "unknown")
VERDICTS = ("allow", "deny", "modify", "warn", "escalate")
PHASES = ("intent", "outcome")

# --- severities ----------------------------------------------------------------
SEVERITIES: dict[str, SeverityNumber] = {
    "debug": SeverityNumber.DEBUG,
    "info": SeverityNumber.INFO,
    "warn": SeverityNumber.WARN,
    "warning": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR,
    "fatal": SeverityNumber.FATAL,
}
SEVERITY_TEXT = {
    SeverityNumber.DEBUG: "DEBUG",
    SeverityNumber.INFO: "INFO",
    SeverityNumber.WARN: "WARN",
    SeverityNumber.ERROR: "ERROR",
    SeverityNumber.FATAL: "FATAL",
}


def event_kind(event_name: str) -> str:
    """``auditel.tool_call`` -> ``tool_call``; names outside our namespace are ``custom``."""
    if event_name.startswith(EVENT_PREFIX):
        return event_name[len(EVENT_PREFIX) :]
    return "custom"
