"""The shipper: moves the outbox to an OTLP backend, at least once, through outages, crashes and rejections.

The runtime builds it with :func:`shipper_from_env` when ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and registers it as the worker task ``ship``: the worker's
daemon thread runs it when a record is committed and on a timer. Without an endpoint nothing
ships and records stay pending (``status()['pending']``).

One batch = claim a leased batch (short transaction) → encode → send (no transaction open) →
mark shipped / dead-letter / release and back off (the policy is ``retry.py``). :meth:`Shipper.pump`
runs batches as a pipeline, a small state machine (:class:`_Pump`): while batches are on the
network (up to ``inflight``, sent by sender threads that also mark them shipped), the next batch is
already claimed and encoded on the calling thread. A batch claimed but not yet sent is only
leased, so a crash re-sends at most the batches on the network. Records are on disk before
``emit`` returns, so nothing here is needed for durability; ``flush()`` at shutdown is a bounded
courtesy.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from auditel.config.otlp import ExporterConfig, ShipTuning, exporter_from_env, tuning_from_env
from auditel.counters import Counters
from auditel.delivery import retry
from auditel.delivery.encode import StoredRow, encode_json, encode_protobuf
from auditel.delivery.pump import BatchResult, Flight, Pump, PumpResult, Sent
from auditel.delivery.retry import Action, Kind, ShipState
from auditel.delivery.senders import Senders
from auditel.delivery.transport import Outcome, Transport, make_transport
from auditel.record.ids import new_stream_id
from auditel.store.outbox import Outbox
from auditel.store.shipping_queue import Lease, ShippingQueue

if TYPE_CHECKING:
    from auditel.delivery.worker import Worker

# How long one run of the worker task may keep claiming batches before it yields to other tasks.
_TASK_SLICE_S = 0.5
_RESOURCE_CACHE_MAX = 1024
_FLOOR_AUDIT_EVERY_S = 86400.0
_MIN_REQUEST_S = 1.0  # the least time a request is given, even at a bounded caller's deadline


class Shipper:
    """Ships one outbox. Safe to call from the worker thread and from ``flush``/CLI threads."""

    def __init__(
        self,
        outbox: Outbox,
        config: ExporterConfig,
        tuning: ShipTuning | None = None,
        *,
        counters: Counters | None = None,
        worker: Worker | None = None,
        transport_factory: Callable[[ExporterConfig], Transport] = make_transport,
    ) -> None:
        self.outbox = outbox
        self.queue = ShippingQueue(outbox)
        self.config = config
        self.tuning = tuning or ShipTuning()
        self.policy = retry.Policy(
            self.tuning.backoff_min_s,
            self.tuning.backoff_max_s,
            self.tuning.slow_retry_s,
            self.tuning.retry_after_max_s,
        )
        self.inflight = self.tuning.inflight_for(config.protocol)
        self.counters = counters or Counters()
        self.worker = worker
        self._transport_factory = transport_factory
        self._encode = encode_json if config.protocol == "http/json" else encode_protobuf
        self._resources: dict[str, dict[str, Any]] = {}
        self._reset_process_state()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset_process_state)

    def _reset_process_state(self) -> None:
        """Fresh per-process state (also in a forked child: never reuse the parent's socket, channel or threads)."""
        self._lock = threading.RLock()
        self._count_lock = threading.Lock()  # shipped_total is counted on sender/marker threads too
        self._senders: Senders | None = None
        self._marker: Senders | None = None  # marks for all senders when several (one SQLite connection)
        self._transport: Transport | None = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_stream_id()[:12]}"
        self.shipped_total = 0
        self.batches_sent = 0
        self.retried = 0
        self.dead_lettered_total = 0
        self.possibly_delivered = 0  # records sent without an answer (refused / TLS failures excluded)
        self.request_timeouts = 0  # requests cut off at their deadline (hung or trickling endpoint)
        self._deadline: float | None = None  # set while a bounded caller (sync, flush) ships
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_kind: str | None = None
        self.last_warning: str | None = None
        self.backoff_s = 0.0
        self.next_attempt = 0.0  # monotonic
        self.state = ShipState.IDLE
        self.paused_for_app = 0  # pauses between batches while the app was committing records
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
        result = self.pump(_TASK_SLICE_S)
        if result is PumpResult.EMPTY:
            return None
        if result is PumpResult.FAILED:
            return max(0.0, self.next_attempt - time.monotonic())
        if result is PumpResult.PARTIAL:
            self._not_before = time.monotonic() + self.tuning.linger_s
            return self.tuning.linger_s
        return 0.0  # the slice is spent and more is pending

    def ship_batch(self) -> BatchResult:
        """Claim and deliver one batch on the calling thread, nothing in parallel."""
        with self._lock:
            lease = self._claim()
            if lease is None:
                if self.state is ShipState.SHIPPING:
                    self.state = ShipState.IDLE
                return BatchResult.EMPTY
            self.state = ShipState.SHIPPING
            try:
                ok = self._deliver(lease.rows)
            except Exception as exc:  # noqa: BLE001 - a bug or a database error: count, back off
                ok = self._failed_with(exc)
            finally:
                self.end_lease(lease)
            return BatchResult.DONE if ok else BatchResult.FAILED

    def pump(self, budget_s: float, progress: Callable[[], None] | None = None) -> PumpResult:
        """Ship batch after batch, pipelined, claiming new batches for up to ``budget_s``.

        Up to ``self.inflight`` batches are on the network at once and one more is claimed and
        encoded meanwhile (see :class:`_Pump`). ``progress`` is called after each settled batch.
        """
        with self._lock:
            return Pump(self, budget_s, progress).run()

    def prepare(self) -> tuple[PumpResult | None, tuple[Lease, bytes] | None, bool]:
        """Claim and encode the next batch: (why claiming stops or None, the batch to send, failed).

        A batch too large for one request is delivered here, split, on the calling thread.
        """
        try:
            lease = self._claim()
        except Exception as exc:  # noqa: BLE001 - a database error: count, back off
            return PumpResult.FAILED, None, not self._failed_with(exc)
        if lease is None:
            return PumpResult.EMPTY, None, False
        self.state = ShipState.SHIPPING
        rows = lease.rows
        small = (
            len(rows) < self.tuning.batch_records and sum(len(row[2]) for row in rows) < self.tuning.batch_bytes // 2
        )
        stop = PumpResult.PARTIAL if small else None
        try:
            rows, payload = self._encode_isolating(rows)
            lease.rows = rows  # without the records that could not be encoded (now dead letters)
            if payload is None:
                ok = True  # every record of the batch was a dead letter: nothing to send
            elif len(payload) <= self.tuning.batch_bytes or len(rows) == 1:
                return stop, (lease, payload), False
            else:
                ok = self._deliver_halves(rows)
        except Exception as exc:  # noqa: BLE001 - a bug or a database error: count, back off
            ok = self._failed_with(exc)
        self.end_lease(lease)
        return (stop if ok else PumpResult.FAILED), None, not ok

    def send_and_mark(self, lease: Lease, payload: bytes) -> Sent:
        """On a sender thread: send one batch and, when it is accepted, mark it shipped at once, the
        lease ending with the last mark (the rows are never free to claim while pending)."""
        outcome = self._send(payload)
        if outcome.kind is not Kind.SUCCESS:
            return Sent(outcome)
        marker = self._marker
        try:
            if marker is not None:
                marker.submit(self._mark_shipped, lease).result()
            else:
                self._mark_shipped(lease)
        except Exception as exc:  # noqa: BLE001 - reported by the settling thread
            return Sent(outcome, error=exc)
        return Sent(outcome, marked=True)

    def _mark_shipped(self, lease: Lease) -> None:
        self._mark_shipped_rids([row[0] for row in lease.rows], lease)

    def _mark_shipped_rids(self, rids: list[int], lease: Lease | None = None) -> None:
        """Mark ``rids`` shipped and count them. The count goes up before the commit (and back down
        if it fails), so whoever sees the rows no longer pending (``flush``) also sees them counted."""
        with self._count_lock:
            self.shipped_total += len(rids)
        try:
            self.queue.mark_shipped(rids, end_lease=lease)
        except BaseException:
            with self._count_lock:
                self.shipped_total -= len(rids)
            raise

    def settle_flight(self, flight: Flight, *, clean: bool) -> bool:
        """Wait for a batch's answer and act on it (on the pumping thread); True when settled."""
        lease_ended = False
        try:
            sent = flight.answer.result()
            lease_ended = sent.marked
            if sent.error is not None:
                raise sent.error
            return self._settle(flight.lease.rows, sent.outcome, marked=sent.marked, clean=clean)
        except Exception as exc:  # noqa: BLE001 - a bug or a database error: count, back off
            return self._failed_with(exc, escalate=clean)
        finally:
            if not lease_ended:
                self.end_lease(flight.lease)

    def sender(self) -> Senders:
        """The sender threads (started on first use)."""
        if self._senders is None:
            self._senders = Senders(self.inflight)
            if self.inflight > 1:
                # One thread marks for all senders: marks take turns anyway (one SQLite writer), and
                # each thread that marks keeps a connection with its own page cache (~2 MB of RSS).
                self._marker = Senders(1, "auditel-mark")
        return self._senders

    def _claim(self) -> Lease | None:
        tuning = self.tuning
        return self.queue.claim(
            self.owner, lease_s=tuning.lease_s, max_records=tuning.batch_records, max_bytes=tuning.batch_bytes
        )

    def _failed_with(self, exc: Exception, *, escalate: bool = True) -> bool:
        self.counters.error("ship", exc)
        self._schedule(Outcome(Kind.TRANSPORT, type(exc).__name__, str(exc)[:300]), escalate=escalate)
        return False

    # --- one batch ---------------------------------------------------------------------------
    def _deliver(self, rows: Sequence[StoredRow]) -> bool:
        """Encode and send ``rows`` on this thread (split when too large); True when they are
        settled (shipped or dead-lettered), False to back off."""
        rows, payload = self._encode_isolating(rows)
        if payload is None:
            return True
        if len(payload) > self.tuning.batch_bytes and len(rows) > 1:
            return self._deliver_halves(rows)
        return self._settle(rows, self._send(payload))

    def _encode_isolating(self, rows: Sequence[StoredRow]) -> tuple[list[StoredRow], bytes | None]:
        """Encode ``rows``; a record that cannot be encoded (a corrupt or hostile stored form, e.g.
        ``time_unix_nano`` stored as ``"1.5e+18"``) goes to the dead letters with the reason, so it can
        never hold back the records after it. Returns the rows encoded and their payload (None: none left)."""
        resources = self._resources_for(rows)
        try:
            return list(rows), self._encode(rows, resources)
        except Exception:  # noqa: BLE001 - find the record(s) at fault, one by one
            pass
        good: list[StoredRow] = []
        for row in rows:
            try:
                self._encode([row], resources)
            except Exception as exc:  # noqa: BLE001 - this record cannot be encoded: isolate it
                why = f"{type(exc).__name__}: {str(exc)[:200]}"
                self._dead_letter([row[0]], Outcome(Kind.UNENCODABLE, "cannot encode", why))
                continue
            good.append(row)
        if not good:
            return good, None
        return good, self._encode(good, resources)

    def _settle(self, rows: Sequence[StoredRow], outcome: Outcome, *, marked: bool = False, clean: bool = True) -> bool:
        """Act on the answer for ``rows`` (``marked``: a sender thread already marked them shipped).

        ``clean=False``: another batch of the same pipeline failed before this one was settled. A
        failure then counts its attempt without growing the backoff again (one outage, several
        batches), and a success does not cancel the backoff that failure set.
        """
        action = retry.action_for(outcome.kind, len(rows))
        if action is Action.MARK_SHIPPED:
            if not marked:
                self._mark_shipped_rids([row[0] for row in rows])
            self.batches_sent += 1
            if clean:
                self.failures = 0
                self.backoff_s = 0.0
                self.next_attempt = 0.0
            if outcome.warning:
                self.last_warning = outcome.warning
            return True
        if action is Action.SPLIT:
            return self._deliver_halves(rows)
        if action is Action.DEAD_LETTER:
            self._dead_letter([row[0] for row in rows], outcome)
            self.batches_sent += 1
            self.failures = 0
            self.backoff_s = 0.0
            return True
        self._count_attempt(rows)  # BACK_OFF or PAUSE: the rows stay pending
        if outcome.kind is Kind.TRANSPORT and outcome.maybe_delivered:
            self.possibly_delivered += len(rows)
        if outcome.timed_out:
            self.request_timeouts += 1
        self._schedule(outcome, escalate=clean)
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
        deadline = self._deadline
        if deadline is None:
            return self._transport.send(payload)
        # a bounded caller (``auditel sync --timeout``, ``flush``): no request outlives its deadline by
        # more than _MIN_REQUEST_S (a request started just before it still gets a fair chance to finish)
        remaining = max(_MIN_REQUEST_S, deadline - time.monotonic())
        return self._transport.send(payload, min(self.config.timeout_s, remaining))

    def _count_attempt(self, rows: Sequence[StoredRow]) -> None:
        try:
            self.queue.count_attempt([row[0] for row in rows])
        except Exception as exc:  # noqa: BLE001 - bookkeeping only
            self.counters.error("ship_attempts", exc)

    def end_lease(self, lease: Lease) -> None:
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
        reason = outcome.message or outcome.kind.value
        moved = self.queue.dead_letter(rids, reason=reason, status=outcome.status)
        self.dead_lettered_total += moved
        self.last_error = f"dead-lettered {moved} records: {outcome.describe()}"
        self.last_error_kind = outcome.kind.value
        key = "dead_letter_encode" if outcome.kind is Kind.UNENCODABLE else "dead_letter"
        if key not in self._reported:
            self._reported.add(key)
            who = "cannot be encoded as OTLP" if outcome.kind is Kind.UNENCODABLE else "were rejected by the backend"
            _stderr(
                f"auditel: {moved} audit records {who} ({outcome.describe()}); they are kept in the"
                " outbox as dead letters, not deleted: list them with `auditel dead-letters`, resend with"
                " `auditel dead-letters --requeue` (reported once; counted in status()['dead_lettered_total'])"
            )

    def _schedule(self, outcome: Outcome, *, escalate: bool = True) -> None:
        """Set the next attempt after a failed one (``retry.next_delay``).

        ``escalate=False``: one more failed batch of a pipeline whose backoff is already set; the
        next attempt only moves later (a longer ``Retry-After``), never earlier.
        """
        if escalate or self.failures == 0:
            self.failures += 1
        self.retried += 1
        self.last_error = outcome.describe()
        self.last_error_kind = outcome.kind.value
        delay = retry.next_delay(self.policy, outcome.kind, self.failures, outcome.retry_after_s, random.uniform)
        when = time.monotonic() + delay
        if not escalate and self.next_attempt > when:
            delay, when = self.backoff_s, self.next_attempt
        self.backoff_s = delay
        self.next_attempt = when
        self.state = retry.wait_state(outcome.kind)
        if outcome.kind in (Kind.AUTH, Kind.CONFIG) and outcome.kind.value not in self._reported:
            self._reported.add(outcome.kind.value)
            _stderr(
                f"auditel: cannot deliver audit records to {self.config.display_endpoint} ({outcome.describe()});"
                f" records stay in the outbox, retrying every ~{self.tuning.slow_retry_s:g} s (reported once)"
            )

    # --- flush and drain ---------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) until every record committed before the call is shipped or dead-lettered."""
        deadline = time.monotonic() + max(0.0, timeout)
        through = self.queue.max_rid()
        worker = self.worker
        use_worker = (
            worker is not None
            and getattr(worker, "running", False)
            and threading.current_thread().name != getattr(worker, "name", None)
        )
        while True:
            if not self.queue.any_pending(through_rid=through):
                return True
            now = time.monotonic()
            if now >= deadline or self.next_attempt > deadline:
                return False  # the next attempt is after the deadline: waiting is pointless
            if use_worker and worker is not None:
                worker.wake()
                time.sleep(0.02)
                continue
            if now < self.next_attempt:
                time.sleep(min(self.next_attempt - now, deadline - now))
                continue
            self._deadline = deadline
            try:
                result = self.pump(deadline - now)
            finally:
                self._deadline = None
            if result is PumpResult.EMPTY:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))  # others hold leases

    def drain(self, timeout: float, progress: Callable[[], None] | None = None) -> None:
        """Ship on the calling thread until nothing is pending or ``timeout`` passes (``auditel sync``)."""
        deadline = time.monotonic() + max(0.0, timeout)
        self._deadline = deadline  # every request ends by the deadline too (a hung endpoint cannot hold it)
        try:
            while time.monotonic() < deadline:
                result = self.pump(deadline - time.monotonic(), progress)
                if progress is not None:
                    progress()
                if result in (PumpResult.EMPTY, PumpResult.PARTIAL):
                    if not self.queue.any_pending():
                        return
                    if result is PumpResult.EMPTY:
                        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))  # leased by another process
                elif result is PumpResult.FAILED:
                    time.sleep(max(0.0, min(self.next_attempt, deadline) - time.monotonic()))
        finally:
            self._deadline = None

    def close(self) -> None:
        for pool in (self._senders, self._marker):
            if pool is not None:
                pool.stop()
        self._senders = self._marker = None
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def audit_ship_floor(self) -> float:
        """Worker task (off the caller's path): see ``Outbox.audit_ship_floor``; a find is reported."""
        found = self.outbox.audit_ship_floor(min_interval_s=_FLOOR_AUDIT_EVERY_S)
        if found:
            self.counters.error(
                "ship_floor_repaired",
                f"{found} pending record(s) were below the ship floor; the floor was lowered so they ship",
            )
        return _FLOOR_AUDIT_EVERY_S

    # --- status --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        wait = max(0.0, self.next_attempt - time.monotonic()) if self.next_attempt else 0.0
        out: dict[str, Any] = {
            "exporter": {"endpoint": self.config.display_endpoint, "protocol": self.config.protocol},
            "shipper_state": self.state.value,
            "shipped_total": self.shipped_total,
            "batches_sent": self.batches_sent,
            "retried": self.retried,
            "possibly_delivered": self.possibly_delivered,
            "request_timeouts": self.request_timeouts,
            "dead_lettered_total": self.dead_lettered_total,
            "consecutive_failures": self.failures,
            "ship_pauses_for_app": self.paused_for_app,
            "backoff_s": round(self.backoff_s, 3),
            "next_attempt_in_s": round(wait, 3),
            "last_ship_error": self.last_error,
            "last_ship_error_kind": self.last_error_kind,
            "last_ship_warning": self.last_warning,
        }
        if self.last_error is not None:
            out["last_error"] = self.last_error
        return out


def shipper_from_env(outbox: Outbox, counters: Counters, worker: Worker) -> Shipper | None:
    """The shipper for this process when an OTLP endpoint is configured (None otherwise), registered
    with ``worker`` as the tasks ``ship`` (on every commit and on a timer) and ``ship_floor_audit``.
    Raises ``ConfigError`` for a bad exporter variable, or for gRPC without grpcio."""
    tuning = tuning_from_env()
    if not tuning.enabled:
        return None
    config = exporter_from_env()
    if config is None:
        return None
    if config.protocol == "grpc":
        make_transport(config).close()  # fail at configure time (ConfigError) if grpcio is missing
    shipper = Shipper(outbox, config, tuning, counters=counters, worker=worker)
    worker.add_task("ship", shipper.run_task, tuning.interval_s, on_wake=True)
    worker.add_task("ship_floor_audit", shipper.audit_ship_floor, _FLOOR_AUDIT_EVERY_S)
    return shipper


def _stderr(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
