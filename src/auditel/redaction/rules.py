"""The redaction rules: the built-in detectors (each a regex with anchors, words and an optional
validator), the opt-in detectors, the sensitive key names, and custom rules from a JSON file.

Every rule anchors on a literal or on a boundary look-behind and never nests unbounded quantifiers, so
a pathological input costs linear time. A rule may keep a context prefix (``password=``) and replace
only the secret after it, and may validate a candidate (Luhn for cards, mod-97 for IBANs, base64
``user:pass`` for Basic auth) before replacing it. See ``docs/redaction.md``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

# Bump whenever the built-in rules change what is redacted.
POLICY_VERSION = "3"

REPLACEMENT = "[REDACTED:{kind}]"
REDACTED_PREFIX = "[REDACTED:"

Validator = Callable[[str], bool]


@dataclass(frozen=True)
class Rule:
    """One detector: ``keep`` (a context regex left in place, may be empty) then ``secret``.

    ``secret`` is what is replaced. Both are Python regexes without capturing groups.
    ``validate`` (optional) gets the secret text and returns False to leave it alone.
    """

    kind: str
    secret: str
    keep: str = ""
    validate: Validator | None = None
    # Prefilter, so that most strings never run the rule's regex; each condition must be
    # implied by the pattern. ``anchors``: regex fragments starting with one literal
    # character, one of which occurs wherever the rule matches (``"-(?<=sk-)"``); all
    # anchors go into one regex that the C engine scans for their first characters.
    # Otherwise: the text must contain one of ``gate``'s characters (if set), then one of
    # ``words`` (in the lower-cased text) or a match of ``trigger_re`` (if either is set).
    anchors: tuple[str, ...] = ()
    gate: str = ""
    words: tuple[str, ...] = ()
    trigger_re: str | None = None
    # Applied in a pass of its own before the others, so that no other rule can take the
    # start of this secret and leave its rest unrecognised (a PEM block after "password=").
    first: bool = False
    note: str = ""

    @property
    def pattern(self) -> str:
        return f"{self.keep}{self.secret}" if self.keep else self.secret


# --- validators -------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Issuer prefixes and lengths of payment cards (Visa, Mastercard, Amex, Discover, JCB,
# Diners, UnionPay, Maestro). A random 16-digit id passes Luhn one time in ten; requiring
# a real issuer prefix and length keeps timestamps and numeric ids out.
_CARD_BRANDS = re.compile(
    r"4(?:\d{12}|\d{15}|\d{18})"  # Visa 13/16/19
    r"|(?:5[1-5]\d{2}|222[1-9]|22[3-9]\d|2[3-6]\d{2}|27[01]\d|2720)\d{12}"  # Mastercard 16
    r"|3[47]\d{13}"  # Amex 15
    r"|(?:6011|65\d{2}|64[4-9]\d)\d{12,15}"  # Discover 16-19
    r"|35(?:2[89]|[3-8]\d)\d{12,15}"  # JCB 16-19
    r"|3(?:0[0-5]|[68]\d)\d{11,13}"  # Diners 14-16
    r"|62\d{14,17}"  # UnionPay 16-19
    r"|(?:50|5[6-9]|6[0-9])\d{10,17}"  # Maestro 12-19
)


def card_ok(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or len(set(digits)) < 2:
        return False
    seps = {c for c in text if c in " -"}
    if len(seps) > 1:
        return False
    return _CARD_BRANDS.fullmatch(digits) is not None and luhn_ok(digits)


def iban_ok(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in moved))
    except ValueError:
        return False
    return number % 97 == 1


def ipv6_ok(text: str) -> bool:
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return text.count(":") >= 2 and not addr.is_loopback and not addr.is_unspecified


def ipv4_ok(text: str) -> bool:
    return not text.startswith(("0.", "127.", "255.")) and text != "0.0.0.0"


_PLACEHOLDER_VALUES = frozenset({"none", "null", "nil", "undefined", "true", "false", "redacted", "n/a"})


def assigned_value_ok(text: str) -> bool:
    """A value after ``password=`` etc.: skip null-ish words and template placeholders."""
    if text.lower() in _PLACEHOLDER_VALUES:
        return False
    if (
        text == "$"
        or text.startswith(("${", "{{", "$(", "<", "%(", "***"))
        or (text[:1] == "$" and text[1:].isidentifier())
    ):
        return False
    return True


def bearer_ok(text: str) -> bool:
    """A bearer credential is random: it has a digit or a symbol, or it is long."""
    if len(text) >= 32:
        return True
    return any(c.isdigit() or c in "._~+/=-" for c in text)


def basic_ok(text: str) -> bool:
    """``Basic`` credentials decode to ``user:password``."""
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return ":" in decoded and decoded.isprintable()


def email_ok(text: str) -> bool:
    # ``git@github.com:org/repo`` is an SSH remote, not a person's address.
    return not text.lower().startswith("git@")


# --- building blocks --------------------------------------------------------------------

_L = r"(?<![A-Za-z0-9])"  # a token starts here: not inside a word
_LT = r"(?<![A-Za-z0-9_-])"  # stricter: not inside a base64url run either
_R = r"(?![A-Za-z0-9])"
_RT = r"(?![A-Za-z0-9_-])"
# Separator between a key and its value: `key=v`, `key: v`, `"key": "v"`, `\"key\":\"v\"`.
_SEP = r"(?:\\?[\"'])?[ \t]{0,4}[:=][ \t]{0,4}(?:\\?[\"'])?"
# An unquoted value: up to a delimiter. Excludes `[` so `[REDACTED:...]` is never rescanned.
_VALUE = r"[^\s\"'\\&;,<>{}()\[\]]{1,4096}"
# A value that runs to the end of the line or closing quote (headers such as Cookie).
_LINE_VALUE = r"[^\s\"'\\\[][^\r\n\"'\\]{0,8191}"

_SENSITIVE_KEY = (
    r"(?i:password|passwd|passphrase|passcode|secret|token|auth|credentials?|cookie"
    r"|(?:api|access|secret|private|client|signing|master|encryption|account|storage|subscription)[_-]?key)"
)
# Lower-case words one of which the text must contain for _SENSITIVE_KEY to match.
_SENSITIVE_WORDS = ("pass", "secret", "token", "auth", "credential", "cookie", "key")

BUILTIN_RULES: tuple[Rule, ...] = (
    # Private keys first: their body may contain anything else.
    Rule(
        "private_key",
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[^-]|-(?!----))*"
        r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?",
        anchors=("-(?=----BEGIN)",),
        first=True,
        note="PEM, PKCS#8, OpenSSH, PGP private key blocks (to the END line, or to the end of the text)",
    ),
    Rule("sentry_token", _L + r"sntry[su]_[A-Za-z0-9+/=_-]{40,600}", anchors=("_(?<=sntry[su]_)",)),
    Rule("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", anchors=(r"\.(?=eyJ)",)),
    Rule(
        "anthropic_api_key",
        _L + r"sk-ant-(?:api|admin|oat|ort|sid)\d{2}-[A-Za-z0-9_-]{20,400}",
        anchors=("-(?<=sk-)",),
    ),
    Rule("openrouter_api_key", _L + r"sk-or-v1-[0-9a-f]{64}", anchors=("-(?<=sk-)",)),
    Rule(
        "openai_api_key",
        _L + r"sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,400}"
        r"|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{48}" + _R + ")",
        anchors=("-(?<=sk-)",),
    ),
    Rule("groq_api_key", _L + r"gsk_[A-Za-z0-9]{48,56}" + _R, anchors=("_(?<=gsk_)",)),
    Rule("xai_api_key", _L + r"xai-[A-Za-z0-9]{70,90}" + _R, anchors=("-(?<=xai-)",)),
    Rule("replicate_api_token", _L + r"r8_[A-Za-z0-9]{37}" + _R, anchors=("_(?<=r8_)",)),
    Rule(
        "aws_access_key_id",
        r"(?<![A-Z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])",
        anchors=("A(?=KIA|SIA|BIA|CCA|3T)",),
    ),
    Rule(
        "aws_secret_access_key",
        r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
        keep=r"(?i:aws[_.-]?secret[_.-]?(?:access[_.-]?)?key|secret[_.-]?access[_.-]?key)" + _SEP,
        gate=":=",
        words=("secret",),
    ),
    Rule("github_token", _L + r"gh[pousr]_[A-Za-z0-9]{36,251}", anchors=("_(?<=gh[pousr]_)",)),
    Rule("github_fine_grained_pat", _L + r"github_pat_[A-Za-z0-9_]{80,255}", anchors=("_(?<=github_)",)),
    Rule(
        "gitlab_token",
        _L + r"gl(?:pat|dt|ptt|rt|cbt|soat|ft|imt|oas|agent)-[A-Za-z0-9_.-]{20,300}",
        anchors=("-(?<=gl[a-z]{2}-)", "-(?<=gl[a-z]{3}-)", "-(?<=gl[a-z]{4}-)", "-(?<=gl[a-z]{5}-)"),
    ),
    Rule("gitlab_token", _L + r"GR1348941[A-Za-z0-9_-]{20,64}", anchors=("G(?=R1348941)",)),
    Rule(
        "slack_token",
        _L
        + r"(?:xox[abeposr]-[A-Za-z0-9-]{10,300}|xoxe\.xox[bp]-\d-[A-Za-z0-9]{100,250}|xapp-\d-[A-Za-z0-9-]{10,300})",
        anchors=("-(?<=xox[abeposr]-)", "-(?<=xapp-)"),
    ),
    Rule(
        "slack_webhook",
        r"[A-Za-z0-9_/-]{20,200}",
        keep=r"(?i:https?://hooks\.slack\.com/(?:services|workflows|triggers)/)",
        gate="/",
        words=("hooks.slack.com",),
    ),
    Rule(
        "stripe_key",
        _L + r"(?:(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,247}|whsec_[A-Za-z0-9+/=]{24,100})",
        anchors=("_(?<=[sr]k_)", "_(?<=whsec_)"),
    ),
    Rule("google_api_key", _L + r"AIza[0-9A-Za-z_-]{35}" + _RT, anchors=("A(?=Iza)",)),
    Rule(
        "google_oauth_token",
        _L + r"(?:ya29\.[0-9A-Za-z_-]{20,2048}|1//0[0-9A-Za-z_-]{40,512}|GOCSPX-[0-9A-Za-z_-]{28})",
        anchors=(r"\.(?<=ya29\.)", "/(?<=1/)(?=/0)", "-(?<=GOCSPX-)"),
    ),
    Rule(
        "azure_storage_key",
        r"[A-Za-z0-9+/]{20,120}={0,2}",
        keep=r"(?i:AccountKey|SharedAccessKey|SharedSecretValue|PrimaryKey|SecondaryKey)=",
        gate="=",
        words=("accountkey", "sharedaccesskey", "sharedsecretvalue", "primarykey", "secondarykey"),
    ),
    Rule(
        "azure_storage_key",
        # after a name and "=" (a query value, key=value text) too, but not right after a padded blob's "=="
        r"(?<![A-Za-z0-9+/])(?<!==)[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])",
        anchors=("=(?==)(?<=[A-Za-z0-9+/]{86}=)",),
        note="a bare 88-character base64 account key",
    ),
    Rule(
        "azure_ad_client_secret",
        r"(?<![A-Za-z0-9_~.])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
        anchors=("~(?<=Q~)",),
    ),
    Rule("npm_token", _L + r"npm_[A-Za-z0-9]{36}" + _R, anchors=("_(?<=npm_)",)),
    Rule(
        "pypi_token",
        _L + r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,1000}",
        anchors=("-(?<=pypi-)",),
    ),
    Rule("huggingface_token", _L + r"(?:hf_|api_org_)[A-Za-z0-9]{34,40}" + _R, anchors=("_(?<=hf_)", "_(?<=api_)")),
    Rule("twilio_api_key", _L + r"SK[0-9a-fA-F]{32}" + _R, anchors=("S(?=K[0-9a-fA-F])",)),
    Rule("sendgrid_api_key", _L + r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", anchors=(r"\.(?<=SG\.)",)),
    Rule("mailgun_api_key", _L + r"key-[0-9a-f]{32}(?![A-Za-z0-9-])", anchors=("-(?<=key-)",)),
    Rule(
        "mailgun_api_key",
        r"[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8}(?![A-Za-z0-9-])",
        keep=r"(?i:mailgun)[A-Za-z0-9_.-]{0,30}" + _SEP,
        gate=":=",
        words=("mailgun",),
    ),
    Rule("shopify_token", _L + r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _R, anchors=("_(?<=shp[a-z]{2}_)",)),
    Rule("databricks_token", _L + r"dapi[0-9a-f]{32}(?:-\d)?" + _R, anchors=("p(?<=dap)(?=i[0-9a-f])",)),
    Rule("digitalocean_token", _L + r"do[opr]_v1_[a-f0-9]{64}" + _R, anchors=("_(?<=_v1_)",)),
    Rule(
        "discord_bot_token",
        r"(?<![A-Za-z0-9_])[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}" + _RT,
        anchors=(r"\.(?=[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27})",),
    ),
    Rule(
        "discord_webhook",
        r"[A-Za-z0-9_-]{30,100}",
        keep=r"(?i:https?://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/)\d{5,30}/",
        gate="/",
        words=("discord",),
    ),
    Rule(
        "telegram_bot_token",
        r"(?<![0-9])\d{8,10}:AA[A-Za-z0-9_-]{33}" + _RT,
        anchors=(":(?=AA)",),
        first=True,  # after "Bearer " the bearer rule would take the digits and stop at ':', leaving the rest
    ),
    Rule(
        "square_token",
        _L + r"(?:sq0(?:atp|csp|idp)-[A-Za-z0-9_-]{22,60}|EAAA[A-Za-z0-9_-]{60})" + _RT,
        anchors=("-(?<=sq0[a-z]{3}-)", "E(?=AAA)"),
    ),
    Rule("heroku_api_key", _L + r"HRKU-[A-Za-z0-9_-]{50,70}" + _RT, anchors=("-(?<=HRKU-)",)),
    Rule(
        "heroku_api_key",
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        keep=r"(?i:heroku[A-Za-z0-9_.-]{0,30})" + _SEP,
        gate=":=",
        words=("heroku",),
    ),
    Rule("vault_token", _L + r"hv[sbr]\.[A-Za-z0-9_-]{24,500}", anchors=(r"\.(?<=hv[sbr]\.)",)),
    Rule("atlassian_api_token", _L + r"ATATT3[A-Za-z0-9_=-]{150,250}", anchors=("A(?=TATT3)",)),
    Rule("new_relic_key", _L + r"(?:NRAK-[A-Z0-9]{27}|NRJS-[a-f0-9]{19})" + _R, anchors=("-(?<=NR[AJ][KS]-)",)),
    Rule("linear_api_key", _L + r"lin_api_[A-Za-z0-9]{40}" + _R, anchors=("_(?<=api_)",)),
    Rule("postman_api_key", _L + r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}" + _R, anchors=("-(?<=PMAK-)",)),
    Rule("doppler_token", _L + r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}" + _R, anchors=(r"\.(?<=dp\.)",)),
    Rule("age_secret_key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", anchors=("-(?<=KEY-)",)),
    Rule(
        "hex_private_key",
        r"(?:0x)?[0-9a-fA-F]{64}(?![0-9a-fA-F])",
        keep=r"(?i:(?:private|priv|secret|signing|wallet|seed)[ _-]?key)[^0-9a-fA-F\r\n]{0,16}",
        words=("key",),
        note="64 hex digits after 'private key', 'signing key', 'secret key'...",
    ),
    # Credentials in context: HTTP auth schemes, URLs, query strings and key=value text.
    Rule(
        "bearer_token",
        r"[A-Za-z0-9._~+/-][A-Za-z0-9._~+/=-]{7,4095}",
        keep=r"(?i:\bbearer)[ \t]+",
        validate=bearer_ok,
        words=("bearer",),
    ),
    Rule(
        "basic_auth",
        r"[A-Za-z0-9+/]{6,2048}={0,2}(?![A-Za-z0-9+/=])",
        keep=r"(?i:\bbasic)[ \t]+",
        validate=basic_ok,
        words=("basic",),
    ),
    Rule(
        "url_credentials",
        r"[^\s/:@?#\"'<>\[\]]{0,256}:[^\s/?#\"'<>\[\]]{1,256}(?=@)",
        keep=r"(?i:\b[a-z][a-z0-9+.-]{1,30}://)",
        gate="@",
        words=("://",),
        note="user:password in scheme://user:password@host",
    ),
    Rule(
        "signed_url",
        r"[^&#\s\"'<>\[\]]{1,4096}",
        keep=r"[?&;](?i:x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential"
        r"|googleaccessid|awsaccesskeyid|signature|sig|key-pair-id|policy)=",
        gate="=",
        words=("sig", "credential", "security-token", "googleaccessid", "awsaccesskeyid", "key-pair-id", "policy"),
        note="query values of pre-signed URLs (S3, GCS, CloudFront, Azure SAS)",
    ),
    Rule(
        "sensitive_key",
        _LINE_VALUE,
        keep=r"(?i:\b(?:proxy-)?authorization|\bset-cookie|\bcookie)" + _SEP,
        validate=assigned_value_ok,
        gate=":=",
        words=("authorization", "cookie"),
        note="header-style Authorization/Cookie: the rest of the line",
    ),
    Rule(
        "sensitive_key",
        r"[^\s\"'\\\[][^\s\"'\\]{0,4095}",
        keep=r"--(?i:[a-z0-9]+-)*?"
        r"(?i:password|passwd|passphrase|token|secret|api-key|apikey|access-key|client-secret)[ \t]+",
        validate=assigned_value_ok,
        gate="-",
        words=("--",),
        note="command-line flags: --password VALUE",
    ),
    Rule(
        "sensitive_key",
        r"(?:[^\"\\\r\n]|\\[^\"\r\n]){1,4096}(?=\\?\")",
        keep=_SENSITIVE_KEY + r"(?:\\?[\"'])?[ \t]{0,4}[:=][ \t]{0,4}\\?\"",
        validate=assigned_value_ok,
        gate=":=",
        words=_SENSITIVE_WORDS,
        note='"key": "value" (also inside JSON text, and JSON text encoded again)',
    ),
    Rule(
        "sensitive_key",
        r"[^'\r\n]{1,4096}(?=')",
        keep=_SENSITIVE_KEY + r"'?[ \t]{0,4}[:=][ \t]{0,4}'",
        validate=assigned_value_ok,
        gate=":=",
        words=_SENSITIVE_WORDS,
        note="'key': 'value' (Python reprs)",
    ),
    Rule(
        "sensitive_key",
        _VALUE,
        keep=_SENSITIVE_KEY + r"[\"']?[ \t]{0,4}[:=][ \t]{0,4}",
        validate=assigned_value_ok,
        gate=":=",
        words=_SENSITIVE_WORDS,
        note="key=value, key: value, ?key=value&... with a sensitive key name",
    ),
    Rule(
        "email",
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])",
        validate=email_ok,
        gate="@",
    ),
    Rule(
        "card_number",
        r"(?<![\w.+])(?<!\d-)[2-6]\d{3}(?:[ -]?\d){8,15}(?![\w]|[.-]\d)",
        validate=card_ok,
        gate="23456",
        # the pattern's own start (12 digits, single separators allowed): four digits alone fired on
        # nearly every hex digest and numeric id, which then ran the card regex for nothing
        trigger_re=r"[2-6]\d{3}(?:[ -]?\d){8}",
        note="Luhn-checked, issuer prefixes",
    ),
)

# Opt-in detectors (AUDITEL_REDACT_EXTRA): more false positives, so off by default.
OPT_IN_RULES: dict[str, tuple[Rule, ...]] = {
    "phone": (
        Rule(
            "phone",
            r"(?<![\w+.-])(?:\+[1-9]\d{0,2}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}(?![\w]|[.-]\d)"
            r"|(?<![\w+])\+[1-9]\d{7,14}(?!\w)",
            trigger_re=r"\d{3}",
        ),
    ),
    "ipv4": (
        Rule(
            "ipv4",
            r"(?<![\w.])(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}(?![\w]|\.\d)",
            validate=ipv4_ok,
            gate=".",
            trigger_re=r"\d\.\d",
        ),
    ),
    "ipv6": (
        Rule(
            "ipv6",
            r"(?<![\w:.])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![\w:.])",
            validate=ipv6_ok,
            gate=":",
            trigger_re=r":[0-9a-fA-F]{0,4}:",
        ),
    ),
    "iban": (
        Rule(
            "iban",
            r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])",
            validate=iban_ok,
            trigger_re=r"[A-Z]{2}\d{2}",
        ),
    ),
    "us_ssn": (
        Rule(
            "us_ssn",
            r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])",
            gate="-",
            trigger_re=r"\d-\d\d-\d",
        ),
    ),
}
EXTRA_ALIASES: dict[str, tuple[str, ...]] = {
    "ip": ("ipv4", "ipv6"),
    "ssn": ("us_ssn",),
    "all": tuple(OPT_IN_RULES),
}

# Mapping keys whose value is replaced whole. A key is split into words (snake, kebab,
# dotted, camelCase); it is sensitive when its last word is one of SENSITIVE_LAST_WORDS, or
# its last word is "key" after one of KEY_QUALIFIERS (api_key, secretAccessKey, x-api-key).
SENSITIVE_LAST_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "passcode",
        "pwd",
        "secret",
        "token",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "cookies",
        "apikey",
        "privatekey",
        "secretkey",
        "accesskey",
        "clientsecret",
        "accesstoken",
        "refreshtoken",
        "authtoken",
    }
)
KEY_QUALIFIERS = frozenset(
    {
        "api",
        "access",
        "secret",
        "private",
        "client",
        "signing",
        "master",
        "encryption",
        "account",
        "storage",
        "subscription",
        "auth",
        "ssh",
        "sas",
        "shared",
    }
)

# Kept for callers of the first version of this module.
DEFAULT_SENSITIVE_KEYS = tuple(sorted(SENSITIVE_LAST_WORDS))

_WORD_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
MARKER_RE = re.compile(r"\[REDACTED:[a-z0-9_]+\](?:#\d+)?")


def key_words(key: str) -> list[str]:
    """``"X-Api-Key"`` -> ``["x", "api", "key"]``; ``"secretAccessKey"`` -> ``["secret", "access", "key"]``."""
    return [w.lower() for w in _WORD_RE.findall(key)]


def default_kinds() -> list[str]:
    """The kinds on by default, in rule order, without repeats."""
    return list(dict.fromkeys(r.kind for r in BUILTIN_RULES))


def opt_in_kinds() -> list[str]:
    return list(OPT_IN_RULES)


def accepted_extra() -> list[str]:
    return list(OPT_IN_RULES) + list(EXTRA_ALIASES)
