"""Checkpoint keys and signatures: Ed25519 (default) or HMAC-SHA256, and the checkpoint statement.

A *checkpoint statement* is a small JSON object::

    {"format": "auditel-checkpoint/1", "origin", "stream_id", "tree_size", "head_hash",
     "time", "previous_checkpoint_hash", "key_id", "algorithm"}

Its bytes are the RFC 8785 (JCS) text; the signature is over exactly those bytes, and the
checkpoint hash (what the next checkpoint names as ``previous_checkpoint_hash``) is the
SHA-256 of the same bytes. ``previous_checkpoint_hash`` is ``null`` for a stream's first
checkpoint. Keys are identified by ``key_id``: ``ed25519:<16 hex>`` = the first 8 bytes of
SHA-256 over the raw 32-byte public key, or ``hmac-sha256:<16 hex>`` = the first 8 bytes of
HMAC-SHA256(key, "auditel.key_id") (the key itself is never revealed).

This module has no side effects; ``checkpoints`` (writer) and ``verify`` (reader) share it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auditel.record.canonical import canonical

CHECKPOINT_FORMAT = "auditel-checkpoint/1"
ALG_ED25519 = "Ed25519"
ALG_HMAC = "HMAC-SHA256"
ALGORITHMS = (ALG_ED25519, ALG_HMAC)
STATEMENT_FIELDS = (
    "format",
    "origin",
    "stream_id",
    "tree_size",
    "head_hash",
    "time",
    "previous_checkpoint_hash",
    "key_id",
    "algorithm",
)
MIN_HMAC_KEY_BYTES = 16


class KeyFormatError(ValueError):
    """A key that cannot be read; the message says what was expected (never the key)."""


class Signer(Protocol):
    algorithm: str
    key_id: str

    def sign(self, data: bytes) -> str: ...

    def public_info(self) -> dict[str, str]: ...


def ed25519_key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def hmac_key_id(key: bytes) -> str:
    return "hmac-sha256:" + hmac.new(key, b"auditel.key_id", hashlib.sha256).hexdigest()[:16]


def public_key_b64(public: Ed25519PublicKey) -> str:
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def public_key_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class Ed25519Signer:
    algorithm = ALG_ED25519

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = ed25519_key_id(self.public)

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._private.sign(data)).decode()

    def public_info(self) -> dict[str, str]:
        return {
            "integrity.algorithm": self.algorithm,
            "integrity.key_id": self.key_id,
            "integrity.public_key": public_key_b64(self.public),
        }

    def private_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


class HmacSigner:
    algorithm = ALG_HMAC

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_HMAC_KEY_BYTES:
            raise KeyFormatError(f"an HMAC key of at least {MIN_HMAC_KEY_BYTES} bytes")
        self._key = key
        self.key_id = hmac_key_id(key)

    def sign(self, data: bytes) -> str:
        return base64.b64encode(hmac.new(self._key, data, hashlib.sha256).digest()).decode()

    def public_info(self) -> dict[str, str]:
        return {"integrity.algorithm": self.algorithm, "integrity.key_id": self.key_id}


# --- reading keys ---------------------------------------------------------------------------
def _b64_or_hex(text: str) -> bytes | None:
    text = text.strip()
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
        return bytes.fromhex(text)
    if re.fullmatch(r"[A-Za-z0-9+/_\-]+=*", text):
        try:
            return base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
    return None


def load_ed25519_private(material: bytes) -> Ed25519PrivateKey:
    """PEM (PKCS#8) private key, or 32 raw bytes, or base64/hex of the 32-byte seed."""
    stripped = material.strip()
    if stripped.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(stripped, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError("a PEM Ed25519 private key (PKCS#8, unencrypted)") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFormatError(f"an Ed25519 private key, not {type(key).__name__}")
        return key
    raw: bytes | None = material if len(material) == 32 else None
    if raw is None:
        try:
            raw = _b64_or_hex(stripped.decode("ascii"))
        except UnicodeDecodeError:
            raw = None
    if raw is not None and len(raw) == 64:  # libsodium style seed || public key
        raw = raw[:32]
    if raw is None or len(raw) != 32:
        raise KeyFormatError("a PEM Ed25519 private key, or base64 of the 32-byte raw private key")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_ed25519_public(material: bytes) -> Ed25519PublicKey:
    """PEM public key (or a PEM private key, whose public half is used), or base64/hex of 32 raw bytes."""
    stripped = material.strip()
    if stripped.startswith(b"-----BEGIN") and b"PRIVATE" in stripped[:40]:
        return load_ed25519_private(stripped).public_key()
    if stripped.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(stripped)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError("a PEM Ed25519 public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFormatError(f"an Ed25519 public key, not {type(key).__name__}")
        return key
    try:
        raw = material if len(material) == 32 else _b64_or_hex(stripped.decode("ascii"))
    except UnicodeDecodeError:
        raw = None
    if raw is None or len(raw) != 32:
        raise KeyFormatError("a PEM Ed25519 public key, or base64 of the 32-byte raw public key")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_hmac_key(text: str) -> bytes:
    """Hex or base64 of at least 16 bytes."""
    raw = _b64_or_hex(text)
    if raw is None or len(raw) < MIN_HMAC_KEY_BYTES:
        raise KeyFormatError(f"hex or base64 of a key of at least {MIN_HMAC_KEY_BYTES} bytes")
    return raw


# --- verifying -------------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifyKey:
    """A key the verifier can check signatures with. ``trusted``: given by the user, not read from the log."""

    key_id: str
    algorithm: str
    ed25519: Ed25519PublicKey | None = None
    hmac_key: bytes | None = None
    trusted: bool = True

    @classmethod
    def from_public(cls, public: Ed25519PublicKey, *, trusted: bool = True) -> VerifyKey:
        return cls(ed25519_key_id(public), ALG_ED25519, ed25519=public, trusted=trusted)

    @classmethod
    def from_hmac(cls, key: bytes) -> VerifyKey:
        return cls(hmac_key_id(key), ALG_HMAC, hmac_key=key, trusted=True)

    def verify(self, data: bytes, signature_b64: Any) -> bool:
        if not isinstance(signature_b64, str) or len(signature_b64) > 200:
            return False
        try:
            sig = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError):
            return False
        if self.algorithm == ALG_ED25519 and self.ed25519 is not None:
            try:
                self.ed25519.verify(sig, data)
                return True
            except InvalidSignature:
                return False
        if self.algorithm == ALG_HMAC and self.hmac_key is not None:
            return hmac.compare_digest(hmac.new(self.hmac_key, data, hashlib.sha256).digest(), sig)
        return False


def statement_bytes(statement: dict[str, Any]) -> bytes:
    return canonical(statement).encode("utf-8")


def statement_hash(statement: dict[str, Any]) -> str:
    return hashlib.sha256(statement_bytes(statement)).hexdigest()
