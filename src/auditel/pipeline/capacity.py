"""Capacity policy: what happens when the outbox reaches ``AUDITEL_MAX_OUTBOX_MB``.

``admit()`` runs for each record *before* the record takes the stream lock, so a thread that
waits for room (``AUDITEL_ON_FULL=block``) never holds the lock other threads need: each emit
waits at most ``AUDITEL_BLOCK_TIMEOUT_MS`` (plus one bounded prune), however many threads are
waiting. The outbox is measured once every ``CHECK_EVERY`` records while there is room, and on
every record once it is full.

Modes: ``block`` (default) wakes the shipper and waits for shipped records to be pruned, then
rejects the record (``rejected.outbox_full``); ``drop_oldest`` deletes the oldest unshipped
records (counted); ``grow`` keeps the record and counts ``rejected.over_cap_kept``.
Integrity records (stream start/end, checkpoints) never pass through here: they are small and
never held back by the cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from auditel.config.settings import Settings
from auditel.counters import Counters
from auditel.store.outbox import Outbox

CHECK_EVERY = 64
_POLL_S = 0.05
_PRUNE_BATCH = 2000


class Rejected(Exception):
    """A record that cannot be stored; the reason is counted."""


class CapacityPolicy:
    def __init__(
        self, outbox: Outbox, settings: Settings, counters: Counters, wakers: Callable[[], Iterable[Callable[[], None]]]
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self.counters = counters
        self._wakers = wakers
        self._since_check = CHECK_EVERY  # measure on the first record
        self._full = False

    def admit(self) -> None:
        """Return when the record may be committed; raise ``Rejected`` when it may not."""
        if self.settings.max_outbox_mb <= 0:
            return
        self._since_check += 1  # racy between threads by design: it only spaces the measurements
        if self._since_check < CHECK_EVERY and not self._full:
            return
        self._since_check = 0
        if self._make_room():
            self._full = False
            return
        self._full = True
        mode = self.settings.on_full
        if mode == "grow":
            self.counters.merge("rejected", {"over_cap_kept": 1})
            return
        if mode == "drop_oldest":
            dropped = self.outbox.prune(shipped_only=False, reason="cap_drop_oldest", limit=256)
            if dropped:
                self.counters.merge("rejected", {"dropped_oldest_unshipped": dropped})
                self.counters.error(
                    "dropped_oldest_unshipped", f"{dropped} unshipped records deleted by AUDITEL_ON_FULL=drop_oldest"
                )
            return
        if mode == "block":
            deadline = time.monotonic() + self.settings.block_timeout_ms / 1000.0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                for wake in self._wakers():
                    try:
                        wake()
                    except Exception as exc:  # noqa: BLE001
                        self.counters.error("wake", exc)
                time.sleep(min(_POLL_S, remaining))
                if self._make_room():
                    self._full = False
                    return
        raise Rejected("outbox_full")

    def _make_room(self) -> bool:
        """True when the outbox is under the cap (after pruning shipped records if needed)."""
        cap = self.settings.max_outbox_bytes
        if self.outbox.bytes_for_cap(cap) < cap:
            return True
        while self.outbox.prune(shipped_only=True, reason="cap", limit=_PRUNE_BATCH):
            if self.outbox.bytes_for_cap(cap) < cap:
                return True
        return False
