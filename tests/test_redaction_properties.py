"""Properties: redaction never raises, is idempotent, and finishes on pathological 1 MB inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditel.redaction.redactor import Redactor
from secrets_corpus import benign_corpus, secret_corpus

SAMPLES = secret_corpus(seed=5)
REDACTOR = Redactor(extra=["all"])

fragments = st.sampled_from([s.text for s in SAMPLES] + benign_corpus(n_random=2)[:120])
glue = st.sampled_from(["", " ", "=", ": ", "\n", "&", "?", '"', "'", "/", "@", "--", "password=", "Bearer ", "https://", "\\"])
texts = st.lists(st.one_of(fragments, glue, st.text(max_size=30)), max_size=8).map("".join)
values = st.recursive(
    st.one_of(texts, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(texts, st.sampled_from(["password", "token", "url", "api_key", "max_tokens"])), children, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_scrub_never_raises_and_is_idempotent(text: str) -> None:
    counts: dict[str, int] = {}
    once = REDACTOR.scrub(text, counts)
    again_counts: dict[str, int] = {}
    assert REDACTOR.scrub(once, again_counts) == once
    assert again_counts == {}
    assert all(isinstance(k, str) and v > 0 for k, v in counts.items())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_redact_never_raises_and_is_idempotent(value: object) -> None:
    once = REDACTOR.redact(value, {})
    assert REDACTOR.redact(once, {}) == once
    json.dumps(once)  # still a JSON-safe value


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([s for s in SAMPLES if s.standalone]), min_size=1, max_size=4), glue)
def test_secrets_joined_with_anything_are_all_removed(samples: list, sep: str) -> None:
    """Self-identifying secrets next to each other and any glue are all found. (A secret that
    needs a context word can lose it to a neighbour: ``password=signing key: 0x...``.)"""
    text = sep.join(f"{s.text} " for s in samples)
    out = REDACTOR.scrub(text, {})
    for sample in samples:
        for needle in sample.needles:
            assert needle not in out


# A regex that backtracks catastrophically on one of these would take hours; the subprocess
# timeout is only a hang guard (the times themselves are reported by bench/bench_redaction.py).
PATHOLOGICAL = textwrap.dedent(
    """
    import json, sys
    from auditel.redaction.redactor import Redactor
    r = Redactor(extra=["all"])
    MB = 1 << 20
    cases = {
        "a": "a" * MB, "A": "A" * MB, "eq": "=" * MB, "dash": "-" * MB, "under": "_" * MB, "dot": "." * MB,
        "at": "@" * MB, "a@": "a@" * (MB // 2), "a@b.": "a@b." * (MB // 4), "colon": ":" * MB,
        "digits": "1" * MB, "card_like": "4111 " * (MB // 5), "backslash": "\\\\" * MB,
        "password=": "password=" * (MB // 9), "open_quote": '"password": "' + "a" * MB,
        "pem_no_end": "-----BEGIN PRIVATE KEY-----\\n" + "A" * MB, "pem_many": "-----BEGIN PRIVATE KEY-----" * (MB // 27),
        "jwt_no_dot": "eyJ" + "a" * MB, "jwt_parts": "eyJaaaaaaaaaa." * (MB // 14),
        "url_user": "http://a:" + "b" * MB, "urls": "http://" * (MB // 7), "url_pairs": "http://a:b" * (MB // 10),
        "bearer": "Bearer " * (MB // 7), "bearer_long": "Bearer " + "a" * MB, "sk": "sk-" * (MB // 3),
        "sk_long": "sk-" + "a" * MB, "flags": "--" + "a-" * (MB // 2), "key_words": "key" * (MB // 3),
        "hex": "0123456789abcdef" * (MB // 16), "b64": "QUJD" * (MB // 4), "ipv4ish": "1.1.1.1." * (MB // 8),
        "ipv6ish": "1:" * (MB // 2), "spaces_digits": "12 " * (MB // 3), "mixed": "x=y&" * (MB // 4),
    }
    out = {}
    for name, text in cases.items():
        counts = {}
        result = r.scrub(text, counts)
        out[name] = [len(result), sum(counts.values())]
    json.dump(out, sys.stdout)
    """
)


def test_pathological_megabyte_inputs_finish() -> None:
    proc = subprocess.run([sys.executable, "-c", PATHOLOGICAL], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result) == 34
    assert result["pem_no_end"] == [len("[REDACTED:private_key]"), 1]  # redacted to the end of the text
    assert result["a"] == [1 << 20, 0] and result["hex"][1] == 0
    assert result["open_quote"][1] == 0 or result["open_quote"][0] < (1 << 20)
