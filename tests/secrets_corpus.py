"""Generated fake secrets (never real ones) and a benign corpus of look-alikes.

``secret_corpus(seed)`` returns one :class:`Sample` per format: the text as it would appear
(with its context, e.g. ``aws_secret_access_key = ...``), the secret, and ``needles``: the
distinctive random parts that must never survive redaction. Everything is drawn from a
seeded RNG at test time, so no secret-shaped literal is committed to the repository.

``benign_corpus(seed)`` returns a few hundred realistic strings that resemble secrets
(UUIDs, git SHAs, base64 images, ids, versions, paths, prose, URLs without credentials,
16-digit numbers failing Luhn) and must be left alone by the default rules.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64URL = ALNUM + "_-"
B64 = ALNUM + "+/"
PASSWORD_CHARS = ALNUM + "!#%^*_+.-"


CONTEXT_KINDS = frozenset({"aws_secret_access_key", "hex_private_key", "bearer_token", "basic_auth", "sensitive_key"})


@dataclass
class Sample:
    kind: str  # the kind a scrub is expected to count (the first one, when several apply)
    text: str  # the secret in its usual context
    needles: list[str] = field(default_factory=list)  # substrings that must be gone
    url_safe: bool = True  # can be placed as-is inside a URL path or query
    delimited: bool = False  # recognised only with a non-base64 character on each side

    @property
    def standalone(self) -> bool:
        """Recognisable on its own, without a context word (``password=``, ``Bearer``...) that
        other text around it could take away."""
        return self.kind not in CONTEXT_KINDS and not self.delimited and not self.text.startswith("HEROKU_API_KEY=")

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.text[:24]}"


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def password(self, n: int = 14) -> str:
        first = self.chars(ALNUM, 1)
        return first + self.chars(PASSWORD_CHARS, n - 2) + self.chars(string.digits, 1)

    def digits(self, n: int) -> str:
        return self.chars(string.digits, n)

    def luhn_complete(self, prefix: str, length: int) -> str:
        body = prefix + self.digits(length - len(prefix) - 1)
        for check in "0123456789":
            candidate = body + check
            total = 0
            for i, ch in enumerate(reversed(candidate)):
                d = int(ch)
                if i % 2:
                    d = d * 2 - 9 if d > 4 else d * 2
                total += d
            if total % 10 == 0:
                return candidate
        raise AssertionError("unreachable")


def _mid(secret: str, n: int = 12) -> str:
    """A distinctive window from the middle of a random part."""
    if len(secret) <= n:
        return secret
    start = (len(secret) - n) // 2
    return secret[start : start + n]


def _b64url_json(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()


def secret_corpus(seed: int = 1234) -> list[Sample]:
    g = _Gen(seed)
    c = g.chars
    out: list[Sample] = []

    def add(kind: str, text: str, *parts: str, url_safe: bool = True) -> None:
        out.append(Sample(kind, text, [_mid(p) for p in parts], url_safe))

    # --- model providers ---
    core = c(B64URL, 74) + "T3BlbkFJ" + c(B64URL, 74)
    add("openai_api_key", "sk-proj-" + core, core)
    core = c(B64URL, 58) + "T3BlbkFJ" + c(B64URL, 58)
    add("openai_api_key", "sk-svcacct-" + core, core)
    core = c(ALNUM, 20) + "T3BlbkFJ" + c(ALNUM, 20)
    add("openai_api_key", "sk-" + core, core)
    core = c(B64URL, 93)
    add("anthropic_api_key", "sk-ant-api03-" + core + "AA", core)
    core = c(B64URL, 93)
    add("anthropic_api_key", "sk-ant-admin01-" + core + "AA", core)
    core = c(HEX, 64)
    add("openrouter_api_key", "sk-or-v1-" + core, core)
    core = c(ALNUM, 52)
    add("groq_api_key", "gsk_" + core, core)
    core = c(ALNUM, 80)
    add("xai_api_key", "xai-" + core, core)
    core = c(ALNUM, 37)
    add("replicate_api_token", "r8_" + core, core)
    core = c(string.ascii_letters, 34)
    add("huggingface_token", "hf_" + core, core)
    # --- clouds ---
    core = c(UPPER_DIGITS, 16)
    add("aws_access_key_id", "AKIA" + core, core)
    core = c(UPPER_DIGITS, 16)
    add("aws_access_key_id", "ASIA" + core, core)
    core = c(ALNUM + "/+", 40)
    add("aws_secret_access_key", "aws_secret_access_key = " + core, core, url_safe=False)
    core = c(ALNUM, 35)
    add("google_api_key", "AIza" + core, core)
    core = c(B64URL, 120)
    add("google_oauth_token", "ya29." + core, core)
    core = c(B64URL, 28)
    add("google_oauth_token", "GOCSPX-" + core, core)
    key = base64.b64encode(g.rng.randbytes(64)).decode()
    add(
        "azure_storage_key",
        f"DefaultEndpointsProtocol=https;AccountName=acct{g.digits(4)};AccountKey={key};EndpointSuffix=core.windows.net",
        key.rstrip("="),
        url_safe=False,
    )
    add("azure_storage_key", key, key.rstrip("="), url_safe=False)
    out[-1].delimited = True
    core = c(ALNUM + "_~.", 3) + g.digits(1) + "Q~" + c(ALNUM + "_~.-", 34)
    add("azure_ad_client_secret", core, core[6:])
    sig = base64.b64encode(g.rng.randbytes(32)).decode()
    add(
        "signed_url",
        "https://acct.blob.core.windows.net/c/report.pdf?sv=2022-11-02&ss=b&srt=o&sp=r"
        f"&se=2030-01-01T00:00:00Z&spr=https&sig={quote(sig, safe='')}",
        quote(sig, safe="")[8:20],
    )
    core = c(HEX, 64)
    add(
        "signed_url",
        "https://bucket.s3.us-east-1.amazonaws.com/data/file.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential=AKIA{c(UPPER_DIGITS, 16)}%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
        f"&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={core}",
        core,
    )
    core = c(HEX, 256)
    add(
        "signed_url",
        "https://storage.googleapis.com/bkt/obj.bin?X-Goog-Algorithm=GOOG4-RSA-SHA256"
        f"&X-Goog-Date=20240101T000000Z&X-Goog-Expires=900&X-Goog-Signature={core}",
        core,
    )
    core = c(HEX, 64)
    add("digitalocean_token", "dop_v1_" + core, core)
    core = c(HEX, 32)
    add("databricks_token", "dapi" + core, core)
    core = c(B64URL, 60)
    add("heroku_api_key", "HRKU-" + core, core)
    u = str(uuid.UUID(int=g.rng.getrandbits(128)))
    add("heroku_api_key", "HEROKU_API_KEY=" + u, u)
    # --- code hosting and CI ---
    for prefix in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"):
        core = c(ALNUM, 36)
        add("github_token", prefix + core, core)
    core = c(ALNUM, 22) + "_" + c(ALNUM, 59)
    add("github_fine_grained_pat", "github_pat_" + core, core)
    core = c(B64URL, 20)
    add("gitlab_token", "glpat-" + core, core)
    core = c(ALNUM, 36)
    add("npm_token", "npm_" + core, core)
    core = c(B64URL, 70)
    add("pypi_token", "pypi-AgEIcHlwaS5vcmc" + core, core)
    core = c(B64URL, 90)
    add("vault_token", "hvs." + core, core)
    core = c(B64URL + "=", 186)
    add("atlassian_api_token", "ATATT3" + core, core)
    core = c(ALNUM, 40)
    add("linear_api_key", "lin_api_" + core, core)
    a, b = c(HEX, 24), c(HEX, 34)
    add("postman_api_key", f"PMAK-{a}-{b}", a, b)
    core = c(ALNUM, 43)
    add("doppler_token", "dp.pt." + core, core)
    core = c(UPPER_DIGITS, 27)
    add("new_relic_key", "NRAK-" + core, core)
    core = _b64url_json({"iat": 1700000000, "url": "https://sentry.io", "org": c(string.ascii_lowercase, 10)}) + "_" + c(B64URL, 43)
    add("sentry_token", "sntrys_" + core, core[-40:])
    # --- messaging and SaaS ---
    core = f"{g.digits(12)}-{g.digits(13)}-{c(ALNUM, 24)}"
    add("slack_token", "xoxb-" + core, core)
    core = f"{g.digits(12)}-{g.digits(12)}-{g.digits(13)}-{c(HEX, 32)}"
    add("slack_token", "xoxp-" + core, core)
    core = f"T{c(UPPER_DIGITS, 10)}/B{c(UPPER_DIGITS, 10)}/{c(ALNUM, 24)}"
    add("slack_webhook", "https://hooks.slack.com/services/" + core, core.split("/")[-1])
    core = c(ALNUM, 24)
    add("stripe_key", "sk_live_" + core + c(ALNUM, 75), core)
    core = c(ALNUM, 99)
    add("stripe_key", "rk_live_" + core, core)
    core = c(HEX, 32)
    add("twilio_api_key", "SK" + core, core)
    a, b = c(B64URL, 22), c(B64URL, 43)
    add("sendgrid_api_key", f"SG.{a}.{b}", a, b)
    core = c(HEX, 32)
    add("mailgun_api_key", "key-" + core, core)
    core = c(HEX, 32)
    add("shopify_token", "shpat_" + core, core)
    a = base64.b64encode(g.digits(18).encode()).decode().rstrip("=")
    b, d = c(B64URL, 6), c(B64URL, 38)
    add("discord_bot_token", f"M{a[1:]}.{b}.{d}", d)
    core = c(B64URL, 68)
    add("discord_webhook", f"https://discord.com/api/webhooks/{g.digits(19)}/{core}", core)
    core = c(B64URL, 33)
    add("telegram_bot_token", f"{g.digits(10)}:AA{core}", core)
    core = c(B64URL, 22)
    add("square_token", "sq0atp-" + core, core)
    core = c(B64URL, 60)
    add("square_token", "EAAA" + core, core)
    core = c("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)
    add("age_secret_key", "AGE-SECRET-KEY-1" + core, core)
    # --- generic shapes ---
    header = _b64url_json({"alg": "HS256", "typ": "JWT"})
    payload = _b64url_json({"sub": c(ALNUM, 16), "name": "Jane Roe", "iat": 1700000000})
    sig = c(B64URL, 43)
    add("jwt", f"{header}.{payload}.{sig}", payload[10:40], sig)
    body = base64.b64encode(g.rng.randbytes(600)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    add(
        "private_key",
        "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----\n",
        lines[3],
        lines[-2],
        url_safe=False,
    )
    body = "b3BlbnNzaC1rZXktdjEAAAAA" + base64.b64encode(g.rng.randbytes(300)).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    add(
        "private_key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END OPENSSH PRIVATE KEY-----",
        lines[2],
        url_safe=False,
    )
    core = c(HEX, 64)
    add("hex_private_key", "signing key: 0x" + core, core, url_safe=False)
    core = c(B64URL + ".", 48) + g.digits(2)
    add("bearer_token", "sent with Bearer " + core, core, url_safe=False)
    user, pw = c(string.ascii_lowercase, 6), g.password()
    add("basic_auth", "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode(), url_safe=False)
    out[-1].needles = [_mid(out[-1].text.split()[1])]
    pw = g.password()
    add("url_credentials", f"https://deploy:{quote(pw, safe='')}@git.example.com/team/repo.git", quote(pw, safe=""))
    pw = g.password()
    add("url_credentials", f"postgresql://app_user:{quote(pw, safe='')}@db.internal:5432/orders", quote(pw, safe=""))
    # --- sensitive key names inside strings ---
    pw = g.password()
    add("sensitive_key", f"password={pw}", pw, url_safe=False)
    pw = g.password()
    add("sensitive_key", json.dumps({"user": "svc", "db_password": pw}), pw, url_safe=False)
    pw = g.password()
    add("sensitive_key", f"--password {pw}", pw, url_safe=False)
    core = c(ALNUM, 32)
    add("sensitive_key", f"client_secret: {core}", core, url_safe=False)
    core = c(ALNUM, 40)
    add("sensitive_key", f"https://api.example.com/v1/data?format=json&api_key={core}&page=2", core)
    core = c(B64URL, 40)
    add("sensitive_key", f"https://hooks.example.com/notify?access_token={core}", core)
    core = c(ALNUM, 32)
    add("sensitive_key", f"Cookie: sessionid={core}; csrftoken={c(ALNUM, 32)}", core, url_safe=False)
    core = c(B64URL, 40)
    add("sensitive_key", f"Authorization: Token {core}", core, url_safe=False)
    # --- personal data on by default ---
    local = c(string.ascii_lowercase, 9)
    add("email", f"{local}.{c(string.ascii_lowercase, 6)}@example-mail.com", local)
    visa = g.luhn_complete("4", 16)
    add("card_number", " ".join(visa[i : i + 4] for i in range(0, 16, 4)), visa, visa[4:8] + " " + visa[8:12])
    mc = g.luhn_complete("53", 16)
    add("card_number", mc, mc)
    amex = g.luhn_complete("37", 15)
    # the middle group with its dashes: six bare digits turn up by chance in timestamps and digests
    add("card_number", f"{amex[:4]}-{amex[4:10]}-{amex[10:]}", amex, f"-{amex[4:10]}-")
    return out


def luhn_failing_16(g: _Gen) -> str:
    card = g.luhn_complete("4", 16)
    return card[:-1] + str((int(card[-1]) + 3) % 10)


def benign_corpus(seed: int = 99, n_random: int = 40) -> list[str]:
    """Realistic strings that look like secrets but are not; the default rules must keep them."""
    g = _Gen(seed)
    c = g.chars
    out: list[str] = []
    for _ in range(n_random):
        out.append(str(uuid.UUID(int=g.rng.getrandbits(128), version=4)))
        out.append(c(HEX, 40))  # git SHA
        out.append(c(HEX, 7))  # short SHA
        out.append(hashlib.sha256(g.rng.randbytes(16)).hexdigest())
        out.append(c("0123456789ABCDEFGHJKMNPQRSTVWXYZ", 26))  # ULID
        out.append(luhn_failing_16(g))
        out.append(c(HEX, 32))  # trace id
        out.append(c(HEX, 16))  # span id
    for i in range(20):
        out.append("data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + g.rng.randbytes(300 + i * 37)).decode())
        out.append(base64.b64encode(g.rng.randbytes(24 + i)).decode())
        out.append(f"sha256:{hashlib.sha256(str(i).encode()).hexdigest()}")
        out.append(f"ghcr.io/acme/agent-runtime@sha256:{hashlib.sha256(bytes([i])).hexdigest()}")
        out.append(str(1_700_000_000_000_000_000 + g.rng.randrange(10**17)))  # ns timestamps
        out.append(str(g.rng.randrange(10**15, 10**16)) if i % 2 else str(1_700_000_000_000 + i))
        out.append(f"req_{c(ALNUM, 24)}")
        out.append(f"call_{c(ALNUM, 24)}")
        out.append(f"toolu_01{c(ALNUM, 22)}")
        out.append(f"chatcmpl-{c(ALNUM, 29)}")
        out.append(f"msg_01{c(ALNUM, 22)}")
        out.append(f"run-{uuid.UUID(int=g.rng.getrandbits(128))}")
        out.append(f"agent-worker-{c(string.ascii_lowercase + string.digits, 10)}-{c(string.ascii_lowercase + string.digits, 5)}")
    out += [
        "1.2.3", "v2.10.0-rc.1", "3.11.7", "0.60b0", "2024.1.15", "10.0.19045.3803", "1.0.0+build.20240101",
        "opentelemetry-sdk==1.39.0", "numpy>=1.26,<2", "@types/node@20.11.5", "scikit-learn 1.4.0",
        "/usr/lib/python3.11/site-packages/opentelemetry/sdk/_logs/_internal/__init__.py",
        "/home/runner/work/auditel/auditel/src/auditel/processor.py", "C:\\Users\\build\\AppData\\Local\\Temp\\tmp8x2k1",
        "./data/2024/03/report-final-v2.csv", "~/.config/agent/settings.toml", "/var/log/nginx/access.log.1",
        "s3://acme-datalake/raw/events/dt=2024-03-01/part-00000-4f1c.snappy.parquet",
        "arn:aws:s3:::acme-datalake/raw/events", "arn:aws:iam::123456789012:role/agent-executor",
        "arn:aws:lambda:us-east-1:123456789012:function:summarize",
        "https://docs.python.org/3/library/re.html?highlight=sub#re.sub",
        "https://api.github.com/repos/octocat/hello-world/pulls?state=open&per_page=100",
        "https://www.google.com/search?q=opentelemetry+audit+log&hl=en",
        "https://example.com/api/v2/users/42/orders?page=3&sort=-created_at",
        "https://github.com/open-telemetry/opentelemetry-python/blob/main/README.md",
        "http://localhost:4318/v1/logs", "grpc://collector.observability.svc.cluster.local:4317",
        "git@github.com:acme/agent-platform.git", "ssh://git@gitlab.example.com:2222/team/repo.git",
        "https://pypi.org/project/opentelemetry-sdk/1.39.0/", "https://registry.npmjs.org/@scope/pkg/-/pkg-1.0.0.tgz",
        "The model used 1532 tokens to answer the question about quarterly revenue.",
        "Reset your password from the account settings page if you forgot it.",
        "This endpoint requires an API key; see the authentication guide.",
        "The secret to good documentation is writing for the reader.",
        "Rotate credentials every 90 days as required by the security policy.",
        "A bearer bond is a debt security owned by whoever holds it.",
        "Basic usage: run the tool with --help to see all options.",
        "Tokenization splits text into subword units before embedding.",
        "The cookie banner was shown 3 times in this session.",
        "Summarize the attached PDF in five bullet points for the board meeting.",
        "Search results: 10 documents matched the query 'vector databases'.",
        "Error: connection refused while contacting the upstream service (retry 3/5).",
        "Traceback (most recent call last):\n  File \"agent.py\", line 42, in run\n    result = tool(**args)\nKeyError: 'query'",
        "SELECT id, name, created_at FROM orders WHERE status = 'open' ORDER BY created_at DESC LIMIT 50",
        "INSERT INTO audit (id, action) VALUES (42, 'tool_call')",
        "ls -la /tmp && grep -rn TODO src/ | head -20", "git commit -m 'Fix token counting for streaming responses'",
        "kubectl get pods -n agents -o wide", "docker run --rm -p 8080:80 nginx:1.25-alpine",
        "python -m pytest tests/ -q -k 'not slow'", "pip install --upgrade 'auditel[all]'",
        json.dumps({"query": "weather in Paris", "max_results": 5, "units": "metric"}),
        json.dumps({"path": "/srv/data/input.txt", "mode": "r", "encoding": "utf-8"}),
        json.dumps({"max_tokens": 1024, "temperature": 0.2, "model": "gpt-4o-2024-08-06"}),
        json.dumps({"token_count": 812, "input_tokens": 700, "output_tokens": 112}),
        json.dumps({"auth_method": "oauth2", "token_type": "Bearer", "expires_in": 3600}),
        json.dumps({"secret_name": "prod/db", "password_policy": "strong", "api_key_id": "key-id-1"}),
        "gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "text-embedding-3-large", "gemini-1.5-pro-002",
        "gen_ai.usage.input_tokens", "audit.tool.call.id", "http.response.status_code",
        "2024-03-01T12:34:56.789Z", "2024-03-01 12:34:56+00:00", "Mon, 01 Apr 2024 10:00:00 GMT",
        "PT1H30M", "1h2m3s", "550e8400-e29b-41d4-a716-446655440000",
        "Order #4521-7789 shipped on 2024-02-11", "Invoice INV-2024-000123 total 1,234.56 EUR",
        "phone extension 4410", "room 1604, building 7", "ISBN 978-3-16-148410-0",
        "Content-Type: application/json; charset=utf-8", "Accept-Encoding: gzip, deflate, br",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
        "X-Request-Id: 7b1c4f0e-6d2a-4c55-9f3e-1b2a3c4d5e6f", "Cache-Control: no-cache, max-age=0",
        "skip-worktree", "sk-learn is not a package name", "task-ghp-migration", "AKIA is the prefix of AWS key ids",
        "eyJhbGciOi is how a JWT header starts", "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZ\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host",
        "0x742d35Cc6634C0532925a3b844Bc454e4438f44e", "tx 0x" + "ab" * 32,
        "pk_live_" + "x" * 24 + " is a publishable key (public by design)",
        "1234 5678 9012 3456", "0000 0000 0000 0000",
        "build 10.0.19045.3803 (x64)", "chapter 3.2.1", "ratio 16:9", "std::vector<int>", "a::b::c",
        "valid until 2030-12-31", "call 911 in an emergency", "score 98-100", "ZIP 94103",
    ]
    return out


# Opt-in detectors (AUDITEL_REDACT_EXTRA): (kind, text, needle). Fake but well-formed values:
# documentation address ranges, a reserved 555 phone number, a checksum-valid IBAN example.
OPT_IN_SAMPLES: list[tuple[str, str, str]] = [
    ("ipv4", "client 203.0.113.42 connected", "203.0.113.42"),
    ("ipv4", "upstream 198.51.100.7:8443 timed out", "198.51.100.7"),
    ("ipv6", "from 2001:db8:85a3::8a2e:370:7334 via", "2001:db8:85a3::8a2e:370:7334"),
    ("phone", "call +1 (555) 010-0199 tomorrow", "010-0199"),
    ("phone", "whatsapp +447700900123", "7700900123"),
    ("us_ssn", "SSN 123-45-6789 on file", "123-45-6789"),
    ("iban", "pay to DE89 3704 0044 0532 0130 00 please", "0532 0130"),
    ("iban", "IBAN GB82WEST12345698765432", "12345698765432"),
]
