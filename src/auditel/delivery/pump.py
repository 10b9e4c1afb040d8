"""The shipper's pipeline as a small state machine: one run of :meth:`Shipper.pump`.

The state is the batch prepared (claimed and encoded, not yet sent), the batches on the network
(at most ``inflight``) and why claiming stopped; :meth:`Pump.phase` derives the next step from it
(:class:`Phase`), and each step is one method. The shipper provides the batch operations
(:class:`Batches`); this module decides only their order.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from auditel.delivery.retry import ShipState
from auditel.delivery.senders import Pacer, Senders
from auditel.delivery.transport import Outcome
from auditel.store.shipping_queue import Lease, ShippingQueue


class PumpResult(str, Enum):
    """Why :meth:`Shipper.pump` returned."""

    EMPTY = "empty"  # nothing left to claim
    PARTIAL = "partial"  # the last batch was small: wait a little for more records
    MORE = "more"  # the time budget is spent and more is pending
    FAILED = "failed"  # back off until ``next_attempt``

    def __str__(self) -> str:
        return self.value


class BatchResult(str, Enum):
    """What :meth:`Shipper.ship_batch` did."""

    EMPTY = "empty"
    DONE = "done"  # shipped or dead-lettered
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class Phase(Enum):
    """The pump's next step, from its state (see ``Pump.phase``)."""

    CLAIM = "claim"  # claim and encode the next batch on the pumping thread
    SEND = "send"  # hand the prepared batch to a sender thread
    SETTLE = "settle"  # wait for the oldest batch on the network and act on its answer
    DONE = "done"  # nothing prepared, nothing on the network, no more to claim


@dataclass
class Sent:
    """What a sender thread reports for one batch."""

    outcome: Outcome
    marked: bool = False  # accepted, already marked shipped, and its lease ended with the last mark
    error: Exception | None = None  # accepted, but marking it shipped failed (it stays pending)


@dataclass
class Flight:
    """A batch on the network: its lease and the sender's answer to come."""

    lease: Lease
    answer: Future[Sent]


class Batches(Protocol):
    """What the pump needs from the shipper."""

    queue: ShippingQueue
    inflight: int
    state: ShipState
    paused_for_app: int

    def prepare(self) -> tuple[PumpResult | None, tuple[Lease, bytes] | None, bool]: ...

    def sender(self) -> Senders: ...

    def send_and_mark(self, lease: Lease, payload: bytes) -> Sent: ...

    def settle_flight(self, flight: Flight, *, clean: bool) -> bool: ...

    def end_lease(self, lease: Lease) -> None: ...


class Pump:
    """One run of the pipeline: the state is the batch prepared, the batches on the network, and
    why claiming stopped. Batches are settled in claim order; after a failure no new batch is sent
    (the one prepared is given back untouched) and every batch already sent is settled."""

    def __init__(self, shipper: Batches, budget_s: float, progress: Callable[[], None] | None) -> None:
        self.shipper = shipper
        self.deadline = time.monotonic() + max(0.0, budget_s)
        self.progress = progress
        self.window: deque[Flight] = deque()
        self.ready: tuple[Lease, bytes] | None = None
        self.stop: PumpResult | None = None  # why no more batches are claimed
        self.failed = False
        self.pacer = Pacer(shipper.queue)

    def phase(self) -> Phase:
        if self.stop is None and self.ready is None:
            return Phase.CLAIM
        if self.ready is not None and len(self.window) < self.shipper.inflight:
            return Phase.SEND
        return Phase.SETTLE if self.window else Phase.DONE

    def run(self) -> PumpResult:
        steps = {Phase.CLAIM: self.claim, Phase.SEND: self.send, Phase.SETTLE: self.settle}
        try:
            while (phase := self.phase()) is not Phase.DONE:
                steps[phase]()
        finally:
            self.give_back()
            while self.window:  # only after an unexpected error: settle what is already on the network
                self.shipper.settle_flight(self.window.popleft(), clean=not self.failed)
        return self.result()

    def claim(self) -> None:
        if time.monotonic() >= self.deadline:
            self.stop = PumpResult.MORE
            return
        self.stop, self.ready, failed = self.shipper.prepare()
        self.failed = self.failed or failed

    def send(self) -> None:
        assert self.ready is not None
        lease, payload = self.ready
        self.ready = None
        shipper = self.shipper
        self.window.append(Flight(lease, shipper.sender().submit(shipper.send_and_mark, lease, payload)))

    def settle(self) -> None:
        shipper = self.shipper
        if not shipper.settle_flight(self.window.popleft(), clean=not self.failed):
            self.failed = True
            self.stop = PumpResult.FAILED
            self.give_back()
        if self.progress is not None:
            self.progress()
        if self.stop is None and self.pacer.between_batches():  # only while more batches follow
            shipper.paused_for_app += 1

    def give_back(self) -> None:
        """A batch prepared but not sent is released untouched (claimable again at once)."""
        if self.ready is not None:
            self.shipper.end_lease(self.ready[0])
            self.ready = None

    def result(self) -> PumpResult:
        shipper = self.shipper
        if self.failed:
            return PumpResult.FAILED
        if self.stop in (PumpResult.EMPTY, PumpResult.PARTIAL, None) and shipper.state is ShipState.SHIPPING:
            shipper.state = ShipState.IDLE
        return self.stop or PumpResult.EMPTY
