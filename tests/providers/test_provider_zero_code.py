"""Zero-code and lazy hooking for the provider SDKs, each in a fresh subprocess.

* ``auditel run`` with environment variables only (``AUDITEL_ENABLED=true``, ``AUDITEL_OUTBOX``) around
  a script with no auditel code, for google-genai, LiteLLM and boto3 (Bedrock).
* ``auditel.instrument()`` imports none of google.genai, litellm, botocore; importing one later
  applies the hooks (they are registered as post-import hooks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from provider_server import ProviderServer

from fake_llm_server import REPLY_TEXT, FakeLLMServer
from genai_support import model_records, outbox_bytes

BIN = Path(sys.executable).parent
MARKER = "PROMPT-MARKER-zero-providers"

AGENTS = {
    "google_genai": """
        from google import genai
        c = genai.Client(api_key="k", http_options={"base_url": os.environ["PROVIDER_URL"]})
        print(c.models.generate_content(model="gemini-zero", contents=MARKER).text)
        print("".join(ch.text or "" for ch in c.models.generate_content_stream(model="gemini-zero-s", contents=MARKER)))
    """,
    "bedrock": """
        import boto3
        c = boto3.client("bedrock-runtime", endpoint_url=os.environ["PROVIDER_URL"], region_name="us-east-1")
        msgs = [{"role": "user", "content": [{"text": MARKER}]}]
        print(c.converse(modelId="nova-zero", messages=msgs)["output"]["message"]["content"][0]["text"])
        events = c.converse_stream(modelId="nova-zero-s", messages=msgs)["stream"]
        print("".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e))
    """,
    "litellm": """
        import litellm
        messages = [{"role": "user", "content": MARKER}]
        kw = {"api_base": os.environ["OPENAI_URL"], "api_key": "sk-test", "messages": messages}
        print(litellm.completion(model="openai/gpt-zero", **kw).choices[0].message.content)
        stream = litellm.completion(model="openai/gpt-zero-s", stream=True, **kw)
        print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
    """,
}
MODELS = {
    "google_genai": ["gemini-zero", "gemini-zero-s"],
    "bedrock": ["nova-zero", "nova-zero-s"],
    "litellm": ["gpt-zero", "gpt-zero-s"],
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "TRACELOOP_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.update(extra)
    return env


@pytest.mark.parametrize("sdk", sorted(AGENTS))
def test_auditel_run_env_only(
    sdk: str, tmp_path: Path, provider_server: ProviderServer, llm_server: FakeLLMServer
) -> None:
    script = tmp_path / f"agent_{sdk}.py"
    script.write_text(f"import os\nMARKER = {MARKER!r}\n" + textwrap.dedent(AGENTS[sdk]))
    outbox = tmp_path / "audit" / "outbox.db"
    env = _env(
        AUDITEL_ENABLED="true",
        AUDITEL_OUTBOX=str(outbox),
        PROVIDER_URL=provider_server.url,
        OPENAI_URL=llm_server.openai_base_url,
    )
    proc = subprocess.run(
        [str(BIN / "auditel"), "run", "--", sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [REPLY_TEXT, REPLY_TEXT], proc.stderr
    records = model_records(outbox)
    assert [r["attributes"]["gen_ai.request.model"] for r in records] == MODELS[sdk]
    assert all(r["attributes"]["audit.outcome"] == "success" for r in records)
    assert all(len(r.get("trace_id", "")) == 32 for r in records)
    data = outbox_bytes(outbox)
    assert MARKER.encode() not in data and REPLY_TEXT.encode() not in data


def test_instrument_imports_no_provider_sdk_and_hooks_on_import(tmp_path: Path) -> None:
    code = f"""
import sys
import auditel
auditel.configure(outbox={str(tmp_path / "outbox.db")!r})
done = auditel.instrument("google_genai", "litellm", "bedrock")
assert sorted(done) == ["auditel_bedrock", "auditel_google_genai", "auditel_litellm"], done
loaded = [m for m in ("google.genai", "litellm", "botocore", "boto3") if m in sys.modules]
assert loaded == [], loaded
import botocore.client, google.genai.models
assert type(botocore.client.BaseClient.__dict__["_make_api_call"]).__name__ == "FunctionWrapper"
assert type(google.genai.models.Models.__dict__["_generate_content"]).__name__ == "FunctionWrapper"
auditel.uninstrument("bedrock")
assert type(botocore.client.BaseClient.__dict__["_make_api_call"]).__name__ == "function"
auditel.uninstrument()
import litellm  # the hook registered for litellm must not fire after uninstrument()
assert type(litellm.completion).__name__ == "function", type(litellm.completion)
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
