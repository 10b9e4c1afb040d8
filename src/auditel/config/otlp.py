"""Delivery configuration: the standard OTLP exporter variables, and auditel's shipper tuning.

Standard variables (``OTEL_EXPORTER_OTLP_LOGS_*`` overrides ``OTEL_EXPORTER_OTLP_*``):

* ``ENDPOINT``: a URL. For HTTP the general variable is a base URL to which ``/v1/logs`` is
  appended; the ``_LOGS_`` variable is used as is. For gRPC, ``host:port`` without a scheme is
  accepted and ``INSECURE`` then decides between TLS and plaintext.
* ``PROTOCOL``: ``http/protobuf`` (default), ``http/json`` or ``grpc``.
* ``HEADERS``: ``key=value,key2=value2``, URL-decoded. Header values are secrets: they are never
  printed, not in errors, not in ``status()``.
* ``TIMEOUT``: per attempt, in milliseconds as the specification says. Values below 100 are
  read as seconds (the reading of the Python OTel SDK), since no export completes in under 100 ms.
* ``COMPRESSION``: ``gzip`` or ``none``.
* ``CERTIFICATE``, ``CLIENT_KEY``, ``CLIENT_CERTIFICATE``: PEM files (trust roots, mTLS pair).
* ``INSECURE``: ``true``/``false`` (gRPC without a scheme only).

auditel's own variables (``AUDITEL_SHIP_*``) tune the shipper; see ``ShipTuning``.
Every bad value raises :class:`auditel.config.settings.ConfigError` naming the variable, the value
(hidden for headers) and what is accepted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from auditel.config.settings import Reader, _non_negative_float, _parse_bool

PROTOCOLS = ("http/protobuf", "http/json", "grpc")
COMPRESSIONS = ("gzip", "none")
MAX_BATCH_RECORDS = 512
MAX_BATCH_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ExporterConfig:
    """Where and how to send OTLP logs. ``headers`` are secret: ``public()`` leaves them out."""

    endpoint: str  # full URL for HTTP (…/v1/logs); URL or host:port for gRPC
    protocol: str = "http/protobuf"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    compression: str = "none"
    certificate: Path | None = None
    client_key: Path | None = None
    client_certificate: Path | None = None
    insecure: bool | None = None

    @property
    def display_endpoint(self) -> str:
        """The endpoint without user-info, query or fragment (those may carry credentials)."""
        return display_url(self.endpoint)

    def public(self) -> dict[str, Any]:
        return {
            "endpoint": self.display_endpoint,
            "protocol": self.protocol,
            "timeout_s": self.timeout_s,
            "compression": self.compression,
            "headers": sorted(self.headers),  # names only
        }

    def secrets(self) -> list[str]:
        """Strings that must never appear in any message (header values, URL credentials)."""
        out = [v for v in self.headers.values() if len(v) >= 4]
        parts = urlsplit(self.endpoint if "://" in self.endpoint else "//" + self.endpoint)
        for piece in (parts.password, parts.username, parts.query):
            if piece and len(piece) >= 4:
                out.append(piece)
        return out


@dataclass(frozen=True)
class ShipTuning:
    """auditel's shipper knobs (``AUDITEL_SHIP_*``). Defaults follow delivery-anchors §10."""

    enabled: bool = True
    batch_records: int = MAX_BATCH_RECORDS
    batch_bytes: int = MAX_BATCH_BYTES
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0
    slow_retry_s: float = 300.0  # 401/403, 3xx and other configuration errors
    retry_after_max_s: float = 900.0
    lease_s: float = 60.0
    interval_s: float = 5.0
    linger_s: float = 0.2  # after a partial batch, wait this long for more records before the next one
    # batches on the network at once (None: the protocol's default, ``default_inflight``). A crash
    # re-sends at most this many batches; more hides a receiver's per-request latency.
    inflight: int | None = None

    def inflight_for(self, protocol: str) -> int:
        return self.inflight if self.inflight is not None else default_inflight(protocol)


# Batches in flight by default. gRPC: rotel (and Collectors without Nagle disabled) answer a lone
# Export only after ~40-50 ms whatever its size, while with two or more streams on the channel the
# answers come back in a few ms; bench_drain.py against rotel: 1 → ~13k records/s, 4 → ~35-40k,
# 8 → no faster (the claim skips more live leases). HTTP: answers take ~1-2 ms and the next batch is
# already claimed and encoded meanwhile; a second connection measured no faster, and 1 keeps
# "a crash re-sends at most one batch". A crash re-sends at most this many batches.
DEFAULT_INFLIGHT = {"grpc": 4}
MAX_INFLIGHT = 16


def default_inflight(protocol: str) -> int:
    return DEFAULT_INFLIGHT.get(protocol, 1)


def display_url(url: str) -> str:
    try:
        parts = urlsplit(url if "://" in url else "//" + url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        if ":" in (parts.hostname or "") and not host.startswith("["):
            host = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        shown = urlunsplit((parts.scheme, host, parts.path, "", ""))
        return shown if "://" in url else shown.removeprefix("//")
    except ValueError:
        return "<unparseable endpoint>"


def _pick(env: Mapping[str, str], suffix: str) -> tuple[str, str] | None:
    """(variable name, value) of the logs-specific variable, else the general one, else None."""
    for var in (f"OTEL_EXPORTER_OTLP_LOGS_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
        raw = env.get(var)
        if raw is not None and raw.strip() != "":
            return var, raw.strip()
    return None


def exporter_from_env(env: Mapping[str, str] | None = None, *, endpoint: str | None = None) -> ExporterConfig | None:
    """The exporter configuration, or ``None`` when no endpoint is set (nothing ships)."""
    env = os.environ if env is None else env
    reader = Reader(env)
    errors = reader.errors

    def parse(suffix: str, fn: Callable[[str, str], Any], accepted: str, *, secret: bool = False) -> Any:
        found = _pick(env, suffix)
        if found is None:
            return None
        var, raw = found
        return reader.parse(var, raw, lambda text: fn(var, text), accepted, secret=secret)

    protocol = parse("PROTOCOL", lambda _v, raw: _choice(raw, PROTOCOLS), "one of " + ", ".join(PROTOCOLS))
    protocol = protocol or "http/protobuf"
    insecure = parse("INSECURE", lambda _v, raw: _parse_bool(raw.strip()), "true or false")
    headers = parse(
        "HEADERS", lambda _v, raw: parse_headers(raw), "comma-separated key=value pairs (URL-encoded)", secret=True
    )
    timeout_s = parse("TIMEOUT", lambda _v, raw: _timeout(raw), "a positive number of milliseconds")
    compression = parse("COMPRESSION", lambda _v, raw: _choice(raw, COMPRESSIONS), "one of gzip, none")
    certificate = parse("CERTIFICATE", lambda _v, raw: _pem_file(raw), "a readable PEM file")
    client_key = parse("CLIENT_KEY", lambda _v, raw: _pem_file(raw), "a readable PEM file")
    client_cert = parse("CLIENT_CERTIFICATE", lambda _v, raw: _pem_file(raw), "a readable PEM file")
    if (client_key is None) != (client_cert is None) and not errors:
        errors.append(
            "OTEL_EXPORTER_OTLP_[LOGS_]CLIENT_KEY and OTEL_EXPORTER_OTLP_[LOGS_]CLIENT_CERTIFICATE must be set together"
            " (expected both files of the mTLS pair, or neither)"
        )

    url: str | None = None
    if endpoint is not None:
        try:
            url = _endpoint("configure(otlp_endpoint=...)", endpoint.strip(), protocol, per_signal=True)
        except ValueError as exc:
            errors.append(f"otlp endpoint {display_url(endpoint)!r} is not valid: {exc}")
    else:
        url = parse(
            "ENDPOINT",
            lambda var, raw: _endpoint(var, raw, protocol, per_signal="_LOGS_" in var),
            "a URL such as http://localhost:4318 (HTTP) or http://localhost:4317 (gRPC)",
        )
    reader.check("invalid OTLP exporter configuration")
    if url is None:
        return None
    return ExporterConfig(
        endpoint=url,
        protocol=protocol,
        headers=headers or {},
        timeout_s=timeout_s or DEFAULT_TIMEOUT_S,
        compression=compression or "none",
        certificate=certificate,
        client_key=client_key,
        client_certificate=client_cert,
        insecure=insecure,
    )


def tuning_from_env(env: Mapping[str, str] | None = None) -> ShipTuning:
    """``AUDITEL_SHIP_*`` variables (mostly for tests and special deployments)."""
    reader = Reader(os.environ if env is None else env)
    errors, values, take = reader.errors, reader.values, reader.take
    take("enabled", "AUDITEL_SHIP_ENABLED", _parse_bool, "true or false")
    take(
        "batch_records",
        "AUDITEL_SHIP_BATCH_RECORDS",
        _int_range(1, MAX_BATCH_RECORDS),
        f"a whole number 1..{MAX_BATCH_RECORDS}",
    )
    take(
        "batch_bytes",
        "AUDITEL_SHIP_BATCH_BYTES",
        _int_range(1024, MAX_BATCH_BYTES),
        f"a number of bytes 1024..{MAX_BATCH_BYTES}",
    )
    take("backoff_min_s", "AUDITEL_SHIP_BACKOFF_MIN_S", _positive_float, "a number of seconds > 0")
    take("backoff_max_s", "AUDITEL_SHIP_BACKOFF_MAX_S", _positive_float, "a number of seconds > 0")
    take("slow_retry_s", "AUDITEL_SHIP_SLOW_RETRY_S", _positive_float, "a number of seconds > 0")
    take("retry_after_max_s", "AUDITEL_SHIP_RETRY_AFTER_MAX_S", _positive_float, "a number of seconds > 0")
    take("lease_s", "AUDITEL_SHIP_LEASE_S", _positive_float, "a number of seconds > 0")
    take("interval_s", "AUDITEL_SHIP_INTERVAL_S", _positive_float, "a number of seconds > 0")
    take("linger_s", "AUDITEL_SHIP_LINGER_S", _non_negative_float, "a number of seconds >= 0")
    take(
        "inflight",
        "AUDITEL_SHIP_INFLIGHT",
        _int_range(1, MAX_INFLIGHT),
        f"a whole number 1..{MAX_INFLIGHT} (batches in flight)",
    )
    lo, hi = values.get("backoff_min_s", 1.0), values.get("backoff_max_s", 60.0)
    if lo > hi and not errors:
        errors.append(
            f"AUDITEL_SHIP_BACKOFF_MIN_S={lo} is larger than AUDITEL_SHIP_BACKOFF_MAX_S={hi}: expected min <= max"
        )
    reader.check("invalid auditel shipping configuration")
    return ShipTuning(**values)


# --- parsers -------------------------------------------------------------------------------------
def parse_headers(raw: str) -> dict[str, str]:
    """W3C-baggage-style ``k=v`` pairs, URL-decoded. Errors name the entry's position, never its value."""
    out: dict[str, str] = {}
    for index, part in enumerate(raw.split(","), start=1):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"entry {index} has no '='")
        key, _, value = part.partition("=")
        key = unquote(key).strip().lower()
        if not key or any(c.isspace() or c in '()<>@,;:\\"/[]?={}' for c in key):
            raise ValueError(f"entry {index} has an invalid header name")
        value = unquote(value).strip()
        if "\r" in value or "\n" in value:
            raise ValueError(f"entry {index} has a line break in its value")
        out[key] = value
    return out


def _choice(raw: str, options: tuple[str, ...]) -> str:
    low = raw.strip().lower()
    if low not in options:
        raise ValueError("")
    return low


def _timeout(raw: str) -> float:
    value = float(raw)
    if not (value > 0) or value == float("inf"):
        raise ValueError("")
    return value if value < 100 else value / 1000.0


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not (value > 0) or value == float("inf"):
        raise ValueError("")
    return value


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not lo <= value <= hi:
            raise ValueError("")
        return value

    return parse


def _pem_file(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ValueError("no such file")
    if not os.access(path, os.R_OK):
        raise ValueError("not readable")
    return path


def _endpoint(var: str, raw: str, protocol: str, *, per_signal: bool) -> str:
    if any(c.isspace() for c in raw):
        raise ValueError("contains whitespace")
    if "://" not in raw:
        if protocol == "grpc":
            parts = urlsplit("//" + raw)
            if not parts.hostname or parts.port is None:
                raise ValueError("expected host:port")
            return raw
        raise ValueError("no scheme (http:// or https://)")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"scheme {parts.scheme!r} is not http or https")
    if not parts.hostname:
        raise ValueError("no host")
    try:
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError("bad port") from exc
    if protocol == "grpc" or per_signal:
        return raw
    path = parts.path.rstrip("/") + "/v1/logs"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def shipping_configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process ships (an OTLP endpoint is set and shipping is not switched off).

    Raises ``ConfigError`` for a bad variable, as the shipper's own set-up would; lets the runtime
    import the delivery stack (protobuf, http.client) only when something will be shipped."""
    return tuning_from_env(env).enabled and exporter_from_env(env) is not None
