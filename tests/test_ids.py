"""Record ids: ULIDs (time-ordered, unique), and distinct sequences in a forked child."""

from __future__ import annotations

import os
import time

from auditel.record.ids import _CROCKFORD, new_record_id


def test_ulid_shape_order_and_uniqueness() -> None:
    ids = [new_record_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 26 and set(i) <= set(_CROCKFORD) for i in ids)
    # the first 10 characters are the millisecond timestamp
    value = 0
    for c in ids[-1][:10]:
        value = value * 32 + _CROCKFORD.index(c)
    assert abs(value - time.time_ns() // 1_000_000) < 60_000
    earlier = new_record_id()
    time.sleep(0.002)
    assert new_record_id()[:10] > earlier[:10]


def test_forked_child_does_not_repeat_the_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, "".join(new_record_id()[10:] for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 10000).decode()
    os.waitpid(pid, 0)
    parent = "".join(new_record_id()[10:] for _ in range(50))
    child_parts = {child[i : i + 16] for i in range(0, len(child), 16)}
    parent_parts = {parent[i : i + 16] for i in range(0, len(parent), 16)}
    assert len(child_parts) == 50 and not (child_parts & parent_parts)


def test_ulid_is_the_base32_of_milliseconds_then_80_random_bits() -> None:
    from auditel.record import ids

    saved = ids._entropy.rng.getstate()
    try:
        ids._entropy.rng.seed(1234)
        made = [new_record_id() for _ in range(200)]
        ids._entropy.rng.seed(1234)
        expected_random = [ids._entropy.rng.getrandbits(80) for _ in range(200)]
    finally:
        ids._entropy.rng.setstate(saved)
    for rid, rand in zip(made, expected_random):
        value = 0
        for c in rid:
            value = value * 32 + _CROCKFORD.index(c)
        assert value < 1 << 128
        assert value & ((1 << 80) - 1) == rand
        assert abs((value >> 80) - time.time_ns() // 1_000_000) < 60_000
