"""Child process of test_dedup.py: OpenLLMetry's OpenAI instrumentation cannot fully uninstrument (it
leaves wrappers behind that change later tests' streams), so its combinations run here, alone.

Usage: python openllmetry_child.py MODE OUTBOX BASE_URL; MODE = auditel_first | openllmetry_first | oi_ol.
Prints the span bridge's counters as JSON.
"""

import json
import sys

import openai
from opentelemetry import trace
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry
from opentelemetry.sdk.trace import TracerProvider

import auditel

mode, outbox, base_url = sys.argv[1:4]
trace.set_tracer_provider(TracerProvider())
auditel.configure(outbox=outbox)
if mode == "auditel_first":
    auditel.instrument("openai")
    OpenLLMetry().instrument()
elif mode == "openllmetry_first":
    OpenLLMetry().instrument()
    auditel.instrument("openai")
else:
    from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference

    OpenInference().instrument()
    OpenLLMetry().instrument()
client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
messages = [{"role": "user", "content": "USER-MARKER hello"}]
REPLY = sys.argv[4]
assert client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content == REPLY
assert client.chat.completions.create(model="gpt-tools", messages=messages).choices[0].message.tool_calls
stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY
print(json.dumps(auditel.status()["span_bridge"]))
