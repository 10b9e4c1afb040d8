"""A small agent with no auditel or OTel code, run by tests/test_zero_code.py under
``opentelemetry-instrument`` and ``auditel run``. Exits with code 3 so tests see it pass through."""

import os
import sys

import openai
from opentelemetry import trace

client = openai.OpenAI(base_url=os.environ["FAKE_LLM_BASE_URL"], api_key="sk-test")
reply = client.chat.completions.create(model="gpt-tools", messages=[{"role": "user", "content": "PROMPT-MARKER-zero"}])
streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True) if c.choices)
print("tool", reply.choices[0].message.tool_calls[0].function.name)
print("streamed", streamed)
print("tracer_provider", type(trace.get_tracer_provider()).__name__)
sys.exit(3)
