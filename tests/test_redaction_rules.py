"""The ``Redactor`` on its own: every format, look-alikes, keys, opt-ins, custom rules, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditel.config.settings import ConfigError
from auditel.redaction.redactor import (
    BUILTIN_RULES,
    OPT_IN_RULES,
    POLICY_VERSION,
    Redactor,
    card_ok,
    default_kinds,
    iban_ok,
    key_words,
)
from secrets_corpus import OPT_IN_SAMPLES, benign_corpus, secret_corpus

SAMPLES = secret_corpus()
REDACTOR = Redactor()


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.label)
def test_each_format_is_replaced_by_its_kind(sample) -> None:
    counts: dict[str, int] = {}
    out = REDACTOR.scrub(sample.text, counts)
    assert counts.get(sample.kind, 0) >= 1, (out, counts)
    assert f"[REDACTED:{sample.kind}]" in out
    for needle in sample.needles:
        assert needle not in out


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.label)
def test_each_format_is_found_inside_prose_json_and_urls(sample) -> None:
    texts = [
        f"Deploy failed: upstream said {sample.text} was rejected (retrying)",
        json.dumps({"config": {"value": sample.text}}),
        f"GET https://api.example.com/v1/search?note={sample.text}&page=2 -> 403",
    ]
    if sample.url_safe:
        texts.append(f"GET https://api.example.com/v1/{sample.text}?page=2 -> 403")
    for text in texts:
        out = REDACTOR.scrub(text, {})
        for needle in sample.needles:
            assert needle not in out, (text, out)


def test_default_rules_cover_at_least_30_kinds() -> None:
    assert len(default_kinds()) >= 30
    assert len({s.kind for s in SAMPLES}) >= 30
    # every default kind has a sample in the corpus
    assert set(default_kinds()) <= {s.kind for s in SAMPLES}


def test_benign_look_alikes_have_zero_false_positives() -> None:
    corpus = benign_corpus()
    assert len(corpus) >= 300
    changed = [(s, REDACTOR.scrub(s, {})) for s in corpus]
    false_positives = [(s, out) for s, out in changed if out != s]
    assert false_positives == []


def test_card_numbers_need_luhn_and_an_issuer_prefix() -> None:
    assert card_ok("4111 1111 1111 1111")
    assert not card_ok("4111 1111 1111 1112")  # fails Luhn
    assert not card_ok("1111 1111 1111 1117")  # passes Luhn, no issuer starts with 1
    assert not card_ok("4111-1111 1111-1111")  # mixed separators
    counts: dict[str, int] = {}
    assert REDACTOR.scrub("paid with 4111111111111111 today", counts) == "paid with [REDACTED:card_number] today"
    assert REDACTOR.scrub("order 4111111111111112 shipped", {}) == "order 4111111111111112 shipped"
    assert REDACTOR.scrub("v4111111111111111", {}) == "v4111111111111111"


def test_iban_checksum() -> None:
    assert iban_ok("GB82WEST12345698765432")
    assert not iban_ok("GB82WEST12345698765433")


@pytest.mark.parametrize(
    "key, sensitive",
    [
        ("password", True),
        ("db_password", True),
        ("Authorization", True),
        ("Proxy-Authorization", True),
        ("set-cookie", True),
        ("x-api-key", True),
        ("apiKey", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("secretAccessKey", True),
        ("client_secret", True),
        ("refresh_token", True),
        ("csrfToken", True),
        ("credentials", True),
        ("private_key", True),
        ("max_tokens", False),
        ("token_count", False),
        ("gen_ai.usage.input_tokens", False),
        ("secret_name", False),
        ("password_policy", False),
        ("primary_key", False),
        ("private_key_id", False),
        ("author", False),
        ("keyboard", False),
    ],
)
def test_sensitive_key_names(key: str, sensitive: bool) -> None:
    assert REDACTOR.is_sensitive_key(key) is sensitive


def test_key_words_split() -> None:
    assert key_words("X-Api-Key") == ["x", "api", "key"]
    assert key_words("secretAccessKey") == ["secret", "access", "key"]
    assert key_words("HTTPHeaderToken") == ["http", "header", "token"]


def test_values_under_sensitive_keys_are_replaced_whole() -> None:
    counts: dict[str, int] = {}
    value = {
        "user": "svc",
        "password": "short",
        "headers": {"Authorization": "Bearer abc", "Cookie": "a=b", "Accept": "text/html"},
        "auth": {"user": "u", "pass": "p"},
        "max_tokens": 512,
        "api_key": None,
        "token": "",
        "flags": {"password_required": True},
    }
    out = REDACTOR.redact(value, counts)
    assert out == {
        "user": "svc",
        "password": "[REDACTED:sensitive_key]",
        "headers": {"Authorization": "[REDACTED:sensitive_key]", "Cookie": "[REDACTED:sensitive_key]", "Accept": "text/html"},
        "auth": "[REDACTED:sensitive_key]",
        "max_tokens": 512,
        "api_key": None,
        "token": "",
        "flags": {"password_required": True},
    }
    assert counts == {"sensitive_key": 4}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("https://x.example/cb?code=1&password=hunter22&next=/home", "https://x.example/cb?code=1&password=[REDACTED:sensitive_key]&next=/home"),
        ('{"user": "a", "password": "hunter 22"}', '{"user": "a", "password": "[REDACTED:sensitive_key]"}'),
        ("{'api_key': 'abc123xyz'}", "{'api_key': '[REDACTED:sensitive_key]'}"),
        ('{\\"token\\":\\"abc123xyz\\"}', '{\\"token\\":\\"[REDACTED:sensitive_key]\\"}'),
        ("DB_PASSWORD=hunter22 ./run.sh", "DB_PASSWORD=[REDACTED:sensitive_key] ./run.sh"),
        ("secret: s3cr3t-value", "secret: [REDACTED:sensitive_key]"),
        ("Authorization: Bearer abc.def.ghi", "Authorization: [REDACTED:sensitive_key]"),
        ("mysql --user=root --password=hunter22 db", "mysql --user=root --password=[REDACTED:sensitive_key] db"),
        ("login --token abc123xyz --verbose", "login --token [REDACTED:sensitive_key] --verbose"),
        ("password=${DB_PASSWORD}", "password=${DB_PASSWORD}"),
        ("token=null", "token=null"),
    ],
)
def test_sensitive_keys_inside_strings(text: str, expected: str) -> None:
    assert REDACTOR.scrub(text, {}) == expected


def test_url_credentials_keep_the_rest_of_the_url() -> None:
    out = REDACTOR.scrub("clone https://bot:p%40ss@git.example.com/org/repo.git now", {})
    assert out == "clone https://[REDACTED:url_credentials]@git.example.com/org/repo.git now"
    assert REDACTOR.scrub("ssh://git@github.com/org/repo", {}) == "ssh://git@github.com/org/repo"


def test_dict_keys_redacted_to_the_same_text_do_not_collide() -> None:
    a, b = [s for s in SAMPLES if s.kind == "github_token"][:2]
    out = REDACTOR.redact({a.text: 1, b.text: 2}, {})
    assert sorted(out.values()) == [1, 2]
    assert set(out) == {"[REDACTED:github_token]", "[REDACTED:github_token]#2"}


def test_redact_attributes_skips_stamped_keys_and_scrubs_keys() -> None:
    token = next(s.text for s in SAMPLES if s.kind == "github_token")
    counts: dict[str, int] = {}
    out = REDACTOR.redact_attributes(
        {"audit.record.id": token, f"note {token}": "x", "tool": f"use {token}"}, counts, skip=frozenset({"audit.record.id"})
    )
    assert out == {"audit.record.id": token, "note [REDACTED:github_token]": "x", "tool": "use [REDACTED:github_token]"}
    assert counts == {"github_token": 2}


def test_short_values_of_known_keys_skip_the_scrubber(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool name like "add" is shorter than any rule can match, so the scrubber never caches it as clean;
    the attribute fast path takes it anyway (it took the slow path on every record before)."""
    redactor = Redactor()
    attrs = {"gen_ai.tool.name": "add", "audit.framework": "mcp", "password": "abc", "note": "hello world"}
    first = redactor.redact_attributes(attrs, {})
    scrubbed: list[str] = []
    real_scrub = redactor.scrub

    def counting_scrub(text: str, counts: dict[str, int]) -> str:
        scrubbed.append(text)
        return real_scrub(text, counts)

    monkeypatch.setattr(redactor, "scrub", counting_scrub)
    counts: dict[str, int] = {}
    again = redactor.redact_attributes(attrs, counts)
    assert again == first == {
        "gen_ai.tool.name": "add",
        "audit.framework": "mcp",
        "password": "[REDACTED:sensitive_key]",  # a sensitive key's short value is still replaced
        "note": "hello world",
    }
    assert counts == {"sensitive_key": 1}
    assert scrubbed == []  # short values and the cached clean "hello world": no scrubbing the second time


@pytest.mark.parametrize("kind, text, needle", OPT_IN_SAMPLES)
def test_opt_in_detectors_are_off_by_default_and_work_when_on(kind: str, text: str, needle: str) -> None:
    assert REDACTOR.scrub(text, {}) == text
    counts: dict[str, int] = {}
    out = Redactor(extra=["all"]).scrub(text, counts)
    assert counts.get(kind) == 1 and needle not in out


def test_opt_in_names_from_env() -> None:
    r = Redactor.from_env({"AUDITEL_REDACT_EXTRA": "phone, ip,iban,ssn"})
    assert {"phone", "ipv4", "ipv6", "iban", "us_ssn"} <= set(r.kinds)
    assert set(OPT_IN_RULES) <= set(Redactor.from_env({"AUDITEL_REDACT_EXTRA": "all"}).kinds)


def test_disable_default_kinds() -> None:
    r = Redactor.from_env({"AUDITEL_REDACT_DISABLE": "email,card_number"})
    assert "email" not in r.kinds and "card_number" not in r.kinds
    assert r.scrub("mail jane.roe@example.org", {}) == "mail jane.roe@example.org"
    assert r.rules_hash != REDACTOR.rules_hash
    off = Redactor.from_env({"AUDITEL_REDACT_DISABLE": "sensitive_key"})
    assert off.redact({"password": "x"}, {}) == {"password": "x"}


@pytest.mark.parametrize(
    "env, fragments",
    [
        ({"AUDITEL_REDACT_EXTRA": "phone,passport"}, ["AUDITEL_REDACT_EXTRA='phone,passport'", "passport", "iban"]),
        ({"AUDITEL_REDACT_DISABLE": "emails"}, ["AUDITEL_REDACT_DISABLE='emails'", "email", "github_token"]),
    ],
)
def test_bad_lists_raise_config_error_naming_var_value_and_accepted(env: dict[str, str], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Redactor.from_env(env)
    for fragment in fragments:
        assert fragment in str(info.value)


def _rules_file(tmp_path: Path, content: object | str) -> str:
    path = tmp_path / "rules.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def test_custom_rules_and_keys_from_file(tmp_path: Path) -> None:
    path = _rules_file(
        tmp_path,
        {
            "rules": [
                {"kind": "acme_ticket_token", "pattern": r"TKT-[0-9]{6}-[A-Z]{4}"},
                {"kind": "acme_session", "pattern": r"acmesess_[a-z0-9]{16}", "ignore_case": True},
            ],
            "sensitive_keys": ["x-acme-auth", "employee_badge"],
        },
    )
    r = Redactor.from_env({"AUDITEL_REDACT_RULES": path})
    counts: dict[str, int] = {}
    assert r.scrub("use TKT-123456-ABCD and ACMESESS_0123456789abcdef", counts) == (
        "use [REDACTED:acme_ticket_token] and [REDACTED:acme_session]"
    )
    assert counts == {"acme_ticket_token": 1, "acme_session": 1}
    assert r.redact({"X-Acme-Auth": "v", "Employee.Badge": "b", "other": "o"}, {}) == {
        "X-Acme-Auth": "[REDACTED:sensitive_key]",
        "Employee.Badge": "[REDACTED:sensitive_key]",
        "other": "o",
    }
    assert r.rules_hash != REDACTOR.rules_hash
    # built-in rules still apply
    token = next(s.text for s in SAMPLES if s.kind == "npm_token")
    assert r.scrub(token, {}) == "[REDACTED:npm_token]"


@pytest.mark.parametrize(
    "content, fragment",
    [
        ({"rules": [{"kind": "x", "pattern": "[unclosed"}]}, "not a valid regular expression"),
        ({"rules": [{"kind": "x", "pattern": "a*"}]}, "matches the empty string"),
        ({"rules": [{"kind": "x", "pattern": "(ab)+"}]}, "capturing groups"),
        ({"rules": [{"kind": "Bad Kind", "pattern": "ab"}]}, "must match"),
        ({"rules": [{"kind": "x", "pattern": "ab", "flags": "i"}]}, "optional \"ignore_case\""),
        ({"rules": {"kind": "x"}}, '"rules" must be a list'),
        ({"rulez": []}, "unknown field"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_rules_file_raises_config_error(tmp_path: Path, content: object, fragment: str) -> None:
    path = _rules_file(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        Redactor.from_env({"AUDITEL_REDACT_RULES": path})
    message = str(info.value)
    assert f"AUDITEL_REDACT_RULES={path!r}" in message and fragment in message and '"kind"' in message


def test_missing_rules_file_raises_config_error(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="cannot read the file"):
        Redactor.from_env({"AUDITEL_REDACT_RULES": path})


def test_policy_version_and_rules_hash_are_stable() -> None:
    assert REDACTOR.policy_version == POLICY_VERSION != "1"
    assert Redactor().rules_hash == REDACTOR.rules_hash
    assert REDACTOR.rules_hash.startswith("sha256:") and len(REDACTOR.rules_hash) == 71
    assert REDACTOR.describe()["kinds"] == default_kinds()


def test_every_builtin_rule_compiles_without_capturing_groups() -> None:
    import re

    for rule in BUILTIN_RULES:
        assert re.compile(rule.pattern).groups == 0, rule.kind


def test_a_telegram_token_after_bearer_is_removed_whole() -> None:
    """Found by the property test: the bearer rule's token stops at ':', so it used to take the
    digits and leave the rest of the bot token, which no rule recognised any more."""
    from auditel.redaction.redactor import Redactor

    token = "1284487402:AAhWZky-L3HGO9iroQotodk0dNnHHdGR5H9"
    out = Redactor().scrub(f"sent with Bearer {token} ok", {})
    assert "O9iroQotodk0" not in out and "1284487402" not in out
    assert out.endswith(" ok")


def test_card_rule_runs_only_on_text_with_twelve_digits_in_a_row() -> None:
    """The card rule's prefilter is the start of its pattern (12 digits, single separators), so a hex
    digest or a short numeric id no longer runs the card regex; every card form still does."""
    card = 1 << next(i for i, r in enumerate(REDACTOR.rules) if r.kind == "card_number")
    pf = REDACTOR._prefilter
    for text in (
        "hmac-sha256:819824918f20f45684a2c0bd3e11b9f1d1a0a7f3e02f0b79c2d0e25a6f3d7c10",
        "chatcmpl-B9x20240517",
        "order 5123-4567 shipped on 2024-05-17",
    ):
        assert not pf.candidates(text) & card, text
    for text in ("4111111111111111", "4111 1111 1111 1111", "5555-5555-5555-4444", "x 3782 822463 10005 y"):
        assert pf.candidates(text) & card, text
        assert "[REDACTED:card_number]" in REDACTOR.scrub(text, {}), text
