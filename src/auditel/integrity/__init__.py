"""Integrity: signing keys, signed checkpoints, the OTLP archive decoder and the verifier."""
