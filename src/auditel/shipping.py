"""The shipper: moves the outbox to an OTLP backend, at least once, through outages, crashes and rejections.

``attach(runtime)`` (called by the runtime at configure time) builds a :class:`Shipper` when
``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and registers it
as the worker task ``ship``: the worker's daemon thread runs it when a record is committed and on
a timer. Without an endpoint nothing ships and records stay pending (``status()['pending']``).

One attempt = claim a leased batch (short transaction) → encode → send (no transaction open) →
mark shipped / dead-letter / release and back off. Records are on disk before ``emit`` returns,
so nothing here is needed for durability; ``flush()`` at shutdown is a bounded courtesy.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import threading
import time
from typing import Any, Callable, Sequence

from .counters import Counters
from .ids import new_stream_id
from .otlp_config import ExporterConfig, ShipTuning, exporter_from_env, tuning_from_env
from .otlp_encode import StoredRow, encode_json, encode_protobuf
from .otlp_transport import Outcome, Transport, make_transport
from .outbox import Outbox
from .shipping_queue import Lease, ShippingQueue

# How long one run of the worker task may keep shipping before it yields to other tasks.
_TASK_SLICE_S = 0.5
_RESOURCE_CACHE_MAX = 1024

# Outcome kind → shipper state while waiting for the next attempt
_WAIT_STATE = {"retry": "backoff", "transport": "backoff", "auth": "paused_auth", "config": "misconfigured"}


class Shipper:
    """Ships one outbox. Safe to call from the worker thread and from ``flush``/CLI threads."""

    def __init__(
        self,
        outbox: Outbox,
        config: ExporterConfig,
        tuning: ShipTuning | None = None,
        *,
        counters: Counters | None = None,
        worker: Any = None,
        transport_factory: Callable[[ExporterConfig], Transport] = make_transport,
    ) -> None:
        self.outbox = outbox
        self.queue = ShippingQueue(outbox)
        self.config = config
        self.tuning = tuning or ShipTuning()
        self.counters = counters or Counters()
        self.worker = worker
        self._transport_factory = transport_factory
        self._encode = encode_json if config.protocol == "http/json" else encode_protobuf
        self._resources: dict[str, dict[str, Any]] = {}
        self._reset_process_state()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset_process_state)

    def _reset_process_state(self) -> None:
        """Fresh per-process state (also in a forked child: never reuse the parent's socket or channel)."""
        self._lock = threading.RLock()
        self._pool: Any = None  # threads for concurrent gRPC sends (AUDITEL_SHIP_INFLIGHT > 1)
        self._transport: Transport | None = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_stream_id()[:12]}"
        self.shipped_total = 0
        self.batches_sent = 0
        self.retried = 0
        self.dead_lettered_total = 0
        self.possibly_delivered = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_kind: str | None = None
        self.last_warning: str | None = None
        self.backoff_s = 0.0
        self.next_attempt = 0.0  # monotonic
        self.state = "idle"
        self.last_batch_size = 0
        self.last_batch_bytes = 0
        self._not_before = 0.0
        self._reported: set[str] = set()

    # --- worker task -----------------------------------------------------------------------
    def run_task(self) -> float | None:
        """The worker's ``ship`` task: returns the delay until it should run again."""
        now = time.monotonic()
        if now < self.next_attempt:
            return self.next_attempt - now  # backing off: a commit wake-up must not cut it short
        if now < self._not_before:
            return self._not_before - now  # lingering after a small batch: gather more records
        slice_end = now + _TASK_SLICE_S
        while True:
            result = self.ship_batch()
            if result == "empty":
                return None
            if result == "failed":
                return max(0.0, self.next_attempt - time.monotonic())
            if self.last_batch_size < self.tuning.batch_records and self.last_batch_bytes < self.tuning.batch_bytes // 2:
                self._not_before = time.monotonic() + self.tuning.linger_s
                self.state = "idle"
                return self.tuning.linger_s
            if time.monotonic() >= slice_end:
                return 0.0

    def ship_batch(self) -> str:
        """Claim and deliver one batch (or, over gRPC with ``AUDITEL_SHIP_INFLIGHT`` > 1, up to that many
        sent at once): ``"empty"``, ``"done"`` (shipped or dead-lettered) or ``"failed"``."""
        with self._lock:
            tuning = self.tuning
            leases = []
            for _ in range(self._inflight()):
                lease = self.queue.claim(
                    self.owner, lease_s=tuning.lease_s, max_records=tuning.batch_records, max_bytes=tuning.batch_bytes
                )
                if lease is None:
                    break
                leases.append(lease)
            if not leases:
                if self.state == "shipping":
                    self.state = "idle"
                return "empty"
            self.state = "shipping"
            self.last_batch_size = sum(len(lease.rows) for lease in leases)
            self.last_batch_bytes = sum(len(row[2]) for lease in leases for row in lease.rows)
            ok = True
            try:
                sent = self._send_concurrently([lease.rows for lease in leases]) if len(leases) > 1 else [None]
                for lease, already in zip(leases, sent):
                    # settle every batch, in order, even after a failure: a batch already accepted is shipped
                    ok = self._deliver(lease.rows, sent=already) and ok
            except Exception as exc:  # noqa: BLE001 - a bug or a database error: count, back off
                self.counters.error("ship", exc)
                self._schedule(Outcome("transport", type(exc).__name__, str(exc)[:300]))
                ok = False
            finally:
                for lease in leases:
                    self._end_lease(lease)
            return "done" if ok else "failed"

    def _inflight(self) -> int:
        return self.tuning.inflight if self.config.protocol == "grpc" else 1

    def _send_concurrently(self, batches: Sequence[Sequence[StoredRow]]) -> list[tuple[bytes, Outcome] | None]:
        """Encode each batch and send them at once (HTTP/2 streams on one gRPC channel).

        A batch too large for one request gets ``None`` and is sent (split) by ``_deliver`` itself.
        """
        payloads = [self._encode(rows, self._resources_for(rows)) for rows in batches]
        fits = [len(p) <= self.tuning.batch_bytes or len(rows) == 1 for p, rows in zip(payloads, batches)]
        if self._transport is None:
            self._transport = self._transport_factory(self.config)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self.tuning.inflight, thread_name_prefix="auditel-ship")
        futures = [self._pool.submit(self._send, p) if ok else None for p, ok in zip(payloads, fits)]
        return [(p, f.result()) if f is not None else None for p, f in zip(payloads, futures)]

    # --- one batch ---------------------------------------------------------------------------
    def _deliver(self, rows: Sequence[StoredRow], *, sent: tuple[bytes, Outcome] | None = None) -> bool:
        """Send ``rows`` (or settle an answer already received for them, ``sent``); True when they are
        settled (shipped or dead-lettered), False to back off."""
        if sent is None:
            payload = self._encode(rows, self._resources_for(rows))
            if len(payload) > self.tuning.batch_bytes and len(rows) > 1:
                return self._deliver_halves(rows)
            outcome = self._send(payload)
        else:
            payload, outcome = sent
        rids = [row[0] for row in rows]
        if outcome.kind == "success":
            self.queue.mark_shipped(rids)
            self.shipped_total += len(rows)
            self.batches_sent += 1
            self.failures = 0
            self.backoff_s = 0.0
            self.next_attempt = 0.0
            if outcome.warning:
                self.last_warning = outcome.warning
            return True
        if outcome.kind in ("too_large", "permanent") and len(rows) > 1:
            # bisect: one record the backend refuses must not take its whole batch to the dead letters
            return self._deliver_halves(rows)
        if outcome.kind in ("partial", "permanent", "too_large"):
            self._dead_letter(rids, outcome)
            self.batches_sent += 1
            self.failures = 0
            self.backoff_s = 0.0
            return True
        self._count_attempt(rows)
        if outcome.kind == "transport":
            self.possibly_delivered += len(rows)
        self._schedule(outcome)
        return False

    def _deliver_halves(self, rows: Sequence[StoredRow]) -> bool:
        middle = len(rows) // 2
        first, second = rows[:middle], rows[middle:]
        if not self._deliver(first):
            self._count_attempt(second)
            return False
        return self._deliver(second)

    def _send(self, payload: bytes) -> Outcome:
        if self._transport is None:
            self._transport = self._transport_factory(self.config)
        return self._transport.send(payload)

    def _count_attempt(self, rows: Sequence[StoredRow]) -> None:
        try:
            self.queue.count_attempt([row[0] for row in rows])
        except Exception as exc:  # noqa: BLE001 - bookkeeping only
            self.counters.error("ship_attempts", exc)

    def _end_lease(self, lease: Lease) -> None:
        try:
            self.queue.end_lease(lease)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself
            self.counters.error("ship_lease", exc)

    def _resources_for(self, rows: Sequence[StoredRow]) -> dict[str, dict[str, Any]]:
        missing = {row[1] for row in rows if row[1] not in self._resources}
        if missing:
            if len(self._resources) > _RESOURCE_CACHE_MAX:
                self._resources.clear()
                missing = {row[1] for row in rows}
            found = self.queue.resources(missing)
            for stream_id in missing:
                self._resources[stream_id] = found.get(stream_id, {})
        return self._resources

    def _dead_letter(self, rids: Sequence[int], outcome: Outcome) -> None:
        reason = outcome.message or outcome.kind
        moved = self.queue.dead_letter(rids, reason=reason, status=outcome.status)
        self.dead_lettered_total += moved
        self.last_error = f"dead-lettered {moved} records: {outcome.describe()}"
        self.last_error_kind = outcome.kind
        if "dead_letter" not in self._reported:
            self._reported.add("dead_letter")
            _stderr(
                f"auditel: the backend rejected {moved} audit records ({outcome.describe()}); they are kept in the"
                " outbox as dead letters, not deleted: list them with `auditel dead-letters`, resend with"
                " `auditel dead-letters --requeue` (reported once; counted in status()['dead_lettered_total'])"
            )

    def _schedule(self, outcome: Outcome) -> None:
        """Set the next attempt after a failed one (exponential backoff with full jitter, or a slow retry)."""
        tuning = self.tuning
        self.failures += 1
        self.retried += 1
        self.last_error = outcome.describe()
        self.last_error_kind = outcome.kind
        if outcome.kind in ("auth", "config"):
            delay = tuning.slow_retry_s * random.uniform(0.9, 1.1)
        else:
            cap = min(tuning.backoff_max_s, tuning.backoff_min_s * (2 ** min(self.failures - 1, 30)))
            delay = random.uniform(0.0, cap)
        if outcome.retry_after_s is not None:
            delay = max(delay, min(outcome.retry_after_s, tuning.retry_after_max_s))
        self.backoff_s = delay
        self.next_attempt = time.monotonic() + delay
        self.state = _WAIT_STATE.get(outcome.kind, "backoff")
        if outcome.kind not in self._reported and outcome.kind in ("auth", "config"):
            self._reported.add(outcome.kind)
            _stderr(
                f"auditel: cannot deliver audit records to {self.config.display_endpoint} ({outcome.describe()});"
                f" records stay in the outbox, retrying every ~{tuning.slow_retry_s:g} s (reported once)"
            )

    # --- flush and drain ---------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) until every record committed before the call is shipped or dead-lettered."""
        deadline = time.monotonic() + max(0.0, timeout)
        through = self.queue.max_rid()
        worker = self.worker
        use_worker = worker is not None and getattr(worker, "running", False) and threading.current_thread().name != getattr(
            worker, "name", None
        )
        while True:
            if not self.queue.any_pending(through_rid=through):
                return True
            now = time.monotonic()
            if now >= deadline or self.next_attempt > deadline:
                return False  # the next attempt is after the deadline: waiting is pointless
            if use_worker:
                worker.wake()
                time.sleep(0.02)
                continue
            if now < self.next_attempt:
                time.sleep(min(self.next_attempt - now, deadline - now))
                continue
            if self.ship_batch() == "empty":
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))  # others hold leases

    def drain(self, timeout: float, progress: Callable[[], None] | None = None) -> None:
        """Ship on the calling thread until nothing is pending or ``timeout`` passes (``auditel sync``)."""
        deadline = time.monotonic() + max(0.0, timeout)
        while time.monotonic() < deadline:
            result = self.ship_batch()
            if progress is not None:
                progress()
            if result == "empty":
                if not self.queue.any_pending():
                    return
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))  # leased by another process
            elif result == "failed":
                time.sleep(max(0.0, min(self.next_attempt, deadline) - time.monotonic()))

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    # --- status --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        wait = max(0.0, self.next_attempt - time.monotonic()) if self.next_attempt else 0.0
        out: dict[str, Any] = {
            "exporter": {"endpoint": self.config.display_endpoint, "protocol": self.config.protocol},
            "shipper_state": self.state,
            "shipped_total": self.shipped_total,
            "batches_sent": self.batches_sent,
            "retried": self.retried,
            "possibly_delivered": self.possibly_delivered,
            "dead_lettered_total": self.dead_lettered_total,
            "consecutive_failures": self.failures,
            "backoff_s": round(self.backoff_s, 3),
            "next_attempt_in_s": round(wait, 3),
            "last_ship_error": self.last_error,
            "last_ship_error_kind": self.last_error_kind,
            "last_ship_warning": self.last_warning,
        }
        if self.last_error is not None:
            out["last_error"] = self.last_error
        return out


def attach(runtime: Any) -> None:
    """Called by the runtime at configure time: ship when an OTLP endpoint is configured."""
    tuning = tuning_from_env()
    if not tuning.enabled:
        return
    config = exporter_from_env()
    if config is None:
        return
    if config.protocol == "grpc":
        make_transport(config).close()  # fail at configure time (ConfigError) if grpcio is missing
    shipper = Shipper(runtime.outbox, config, tuning, counters=runtime.counters, worker=runtime.worker)
    runtime.shipper = shipper
    runtime.worker.add_task("ship", shipper.run_task, tuning.interval_s, on_wake=True)


def _stderr(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
