"""Cost per record of auditel's integrity work: safe form, redaction, canonicalisation, chaining.

Prints a table (microseconds per record, median of several rounds) for realistic records, the
share of each step in a full ``auditel.emit`` (which also commits to SQLite), the amortised cost
of signing checkpoints, and the stock OTel pipeline (LoggerProvider + BatchLogRecordProcessor +
OTLP/HTTP exporter) measured in the same run for comparison.

    python bench/bench_integrity.py [--records 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

from auditel.record.canonical import canonical
from auditel.redaction.redactor import Redactor
from auditel.record.safe_value import safe_attributes, safe_value
from auditel.integrity.signing import Ed25519Signer, HmacSigner, statement_bytes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def tool_call(i: int) -> tuple[dict[str, Any], Any]:
    attrs = {
        "audit.action": "EXECUTE",
        "audit.phase": "outcome",
        "audit.outcome": "success",
        "gen_ai.tool.name": "read_file",
        "gen_ai.tool.call.id": f"call_{i:08d}",
        "audit.target.type": "file",
        "audit.target.id": f"/srv/app/data/report-{i % 97}.csv",
        "audit.arguments.digest": "hmac-sha256:" + hashlib.sha256(str(i).encode()).hexdigest(),
        "audit.arguments.size": 118 + i % 50,
        "audit.result.digest": "hmac-sha256:" + hashlib.sha256(str(-i).encode()).hexdigest(),
        "audit.result.size": 4096,
        "audit.duration_ms": 12.5 + (i % 10),
        "gen_ai.agent.name": "support-bot",
        "session.id": "5e55105e55105e55105e55105e551051",
    }
    return attrs, None


def model_call_with_content(i: int) -> tuple[dict[str, Any], Any]:
    attrs = {
        "audit.action": "INVOKE",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.provider.name": "openai",
        "gen_ai.usage.input_tokens": 1200 + i % 300,
        "gen_ai.usage.output_tokens": 180,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.response.finish_reasons": ["stop"],
    }
    body = {
        "messages": [
            {"role": "system", "content": "You are a helpful support assistant. Answer briefly and cite the ticket."},
            {"role": "user", "content": f"Ticket #{i}: my invoice shows a double charge, see https://billing.example.com/inv/{i}?ref=mail"},
        ],
        "completion": "I found the duplicate charge on your invoice and opened a refund request; it takes 3-5 days.",
    }
    return attrs, body


def per_record_us(fn: Callable[[int], Any], n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def stamp(attrs: dict[str, Any], i: int) -> dict[str, Any]:
    attrs = dict(attrs)
    attrs.update({"audit.record.id": f"01JGZ{i:021d}", "audit.schema.version": "1",
                  "audit.sequence.stream_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "audit.sequence.number": i + 1,
                  "audit.sequence.previous_hash": "ab" * 32})
    return attrs


def record_of(attrs: dict[str, Any], body: Any, i: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"event_name": "auditel.tool_call", "time_unix_nano": str(1767225600000000000 + i),
                           "observed_time_unix_nano": str(1767225600000000000 + i), "severity_number": 9,
                           "severity_text": "INFO", "attributes": stamp(attrs, i)}
    if body is not None:
        rec["body"] = body
    return rec


def bench_steps(kind: str, make: Callable[[int], tuple[dict[str, Any], Any]], n: int, rounds: int) -> dict[str, float]:
    redactor = Redactor()
    inputs = [make(i) for i in range(n)]
    safe = [(safe_attributes(a), safe_value(b) if b is not None else None) for a, b in inputs]
    records = [record_of(a, b, i) for i, (a, b) in enumerate(safe)]
    texts = [canonical(r) for r in records]

    def do_safe(i: int) -> None:
        a, b = inputs[i]
        safe_attributes(a)
        if b is not None:
            safe_value(b)

    def do_redact(i: int) -> None:
        a, b = safe[i]
        counts: dict[str, int] = {}
        redactor.redact_attributes(a, counts)
        if b is not None:
            redactor.redact(b, counts)

    def do_canonical(i: int) -> None:
        canonical(records[i])

    def do_hash(i: int) -> None:
        hashlib.sha256(texts[i].encode("utf-8")).hexdigest()

    return {
        "safe form": per_record_us(do_safe, n, rounds),
        "redaction": per_record_us(do_redact, n, rounds),
        "canonical (JCS)": per_record_us(do_canonical, n, rounds),
        "sha256 + link": per_record_us(do_hash, n, rounds),
        "bytes": statistics.mean(len(t) for t in texts),
    }


def bench_emit(make: Callable[[int], tuple[dict[str, Any], Any]], n: int, rounds: int) -> float:
    import auditel
    from auditel import runtime as runtime_mod

    os.environ.setdefault("AUDITEL_CHECKPOINT_EVERY", "1000")
    tmp = tempfile.mkdtemp(prefix="auditel-bench-")
    os.environ["AUDITEL_SIGNING_KEY_FILE"] = _key_file(tmp)
    auditel.configure(outbox=os.path.join(tmp, "outbox.db"))
    inputs = [make(i) for i in range(n)]

    def emit(i: int) -> None:
        a, b = inputs[i]
        auditel.emit("auditel.tool_call", attributes=a, body=b)

    try:
        return per_record_us(emit, n, rounds)
    finally:
        runtime_mod.shutdown(5.0)


def _key_file(tmp: str) -> str:
    path = os.path.join(tmp, "key.pem")
    with open(path, "wb") as f:
        f.write(Ed25519Signer(Ed25519PrivateKey.generate()).private_pem())
    return path


def bench_stock(make: Callable[[int], tuple[dict[str, Any], Any]], n: int, rounds: int) -> float:
    """Stock OTel: LoggerProvider + BatchLogRecordProcessor + OTLP/HTTP exporter (to a closed local port)."""
    import logging

    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)  # the closed port's retry messages
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint="http://127.0.0.1:9/v1/logs", timeout=1), max_queue_size=1 << 20)
    )
    logger = provider.get_logger("bench")
    inputs = [make(i) for i in range(n)]

    def emit(i: int) -> None:
        a, b = inputs[i]
        logger.emit(event_name="auditel.tool_call", attributes=a, body=b)

    try:
        return per_record_us(emit, n, rounds)
    finally:
        provider.shutdown()


def bench_signing(rounds: int) -> dict[str, float]:
    st = {"format": "auditel-checkpoint/1", "origin": "svc@host", "stream_id": "0f" * 16, "tree_size": 1000,
          "head_hash": "ab" * 32, "time": str(time.time_ns()), "previous_checkpoint_hash": "cd" * 32,
          "key_id": "ed25519:0123456789abcdef", "algorithm": "Ed25519"}
    ed = Ed25519Signer(Ed25519PrivateKey.generate())
    hm = HmacSigner(os.urandom(32))
    return {
        "Ed25519 sign": per_record_us(lambda i: ed.sign(statement_bytes(st)), 500, rounds),
        "HMAC-SHA256 sign": per_record_us(lambda i: hm.sign(statement_bytes(st)), 500, rounds),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n, rounds = args.records, args.rounds
    print(f"auditel integrity bench: {n} records x {rounds} rounds, Python {sys.version.split()[0]}, median us/record\n")
    kinds = {"tool_call (metadata only)": tool_call, "model_call with content body": model_call_with_content}
    header = f"{'record':32} {'bytes':>6} {'safe':>7} {'redact':>7} {'JCS':>7} {'sha256':>7} {'integrity':>10} {'emit':>8} {'share':>6} {'stock OTel':>11}"
    print(header)
    print("-" * len(header))
    for name, make in kinds.items():
        steps = bench_steps(name, make, n, rounds)
        emit = bench_emit(make, n, rounds)
        stock = bench_stock(make, n, rounds)
        integrity = steps["redaction"] + steps["canonical (JCS)"] + steps["sha256 + link"]
        print(
            f"{name:32} {steps['bytes']:6.0f} {steps['safe form']:7.1f} {steps['redaction']:7.1f} "
            f"{steps['canonical (JCS)']:7.1f} {steps['sha256 + link']:7.1f} {integrity:10.1f} {emit:8.1f} "
            f"{integrity / emit:6.0%} {stock:11.1f}"
        )
    print("\nintegrity = redaction + JCS + sha256 (the per-record integrity work on the emit path);")
    print("emit = full auditel.emit (safe form, redaction, chain, SQLite commit, span bridge); share = integrity / emit;")
    print("stock OTel = LoggerProvider + BatchLogRecordProcessor + OTLP/HTTP exporter: enqueue only, nothing durable.\n")
    sign = bench_signing(rounds)
    for name, us in sign.items():
        print(f"checkpoint {name:18} {us:7.1f} us per checkpoint = {us / 1000:.3f} us/record at 1 per 1000 records (worker thread)")


if __name__ == "__main__":
    main()
