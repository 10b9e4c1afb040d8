"""The checks of one stream, one function per phase, in the order ``verify_stream`` runs them:

1. ``choose_copies``: one record per sequence number (duplicates and conflicting copies reported);
2. ``check_records``: each record on its own (stored hash, canonical form, position, markers);
3. ``check_links``: contiguous sequence numbers and each ``previous_hash`` against the record before;
4. ``find_stream_key``: the key the stream start names (or, once it is pruned, the kept key);
5. ``check_signatures``, ``check_checkpoint_chain``, ``check_heads``: the signed checkpoints;
6. ``check_truncation``: records a signed checkpoint covers but the stream lacks;
7. ``check_tail_and_end``: what no checkpoint covers yet, and how the stream ended.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from auditel.integrity.evidence import Evidence, int_of, text_of
from auditel.integrity.parsing import Cp, Rec, carried, is_canonical
from auditel.integrity.report import StreamReport
from auditel.integrity.signing import (
    ALG_ED25519,
    ALG_HMAC,
    KeyFormatError,
    VerifyKey,
    load_ed25519_public,
    statement_bytes,
)
from auditel.record import schema as S


@dataclass
class StreamInput:
    """Everything known about one stream before its checks run."""

    sid: str
    by_seq: dict[int, list[Rec]]
    cps: dict[str, Cp]
    pruned: tuple[int, str | None] | None
    trusted: dict[str, VerifyKey]
    external_label: str
    evidence: Evidence
    kept_keys: dict[str, tuple[VerifyKey, str]] = field(default_factory=dict)  # key id -> (key, where)
    log_label: str = "the checkpoint log"


@dataclass
class StreamState:
    """What the phases learn and pass on."""

    seqs: list[int]
    chosen: dict[int, Rec]
    pruned_through: int
    pruned_head: str | None
    partial: bool
    archive: bool
    ordered: list[Cp] = field(default_factory=list)
    ended_at: int | None = None
    stream_key: VerifyKey | None = None
    start_key_id: str | None = None
    anchored: int = 0

    @property
    def last_local(self) -> int:
        return max(self.seqs[-1] if self.seqs else 0, self.pruned_through)


def choose(copies: list[Rec], successor: list[Rec] | None) -> Rec:
    if len(copies) > 1 and successor:
        for rec in copies:
            if any(s.prev == rec.digest for s in successor):
                return rec
    return copies[0]


def verify_stream(inp: StreamInput) -> StreamReport:
    rep = StreamReport(inp.sid)
    pruned_through, pruned_head = inp.pruned if inp.pruned else (0, None)
    st = StreamState(
        seqs=sorted(inp.by_seq),
        chosen={},
        pruned_through=pruned_through,
        pruned_head=pruned_head,
        partial=inp.evidence.partial,  # a filtered export: gaps are expected
        archive=inp.evidence.kind == "archive",  # arrival order is not stored order; delivery is at least once
    )
    rep.pruned_through = pruned_through
    choose_copies(rep, inp, st)
    check_records(rep, inp, st)
    check_links(rep, st)
    find_stream_key(rep, inp, st)
    st.ordered = sorted(inp.cps.values(), key=lambda c: (c.tree_size, c.statement["time"]))
    rep.checkpoints = len(st.ordered)
    check_signatures(rep, inp, st)
    check_checkpoint_chain(rep, st)
    check_heads(rep, st)
    check_truncation(rep, inp, st)
    check_tail_and_end(rep, inp, st)
    return rep


def choose_copies(rep: StreamReport, inp: StreamInput, st: StreamState) -> None:
    redelivered = 0
    for seq in st.seqs:
        copies = inp.by_seq[seq]
        rec = choose(copies, inp.by_seq.get(seq + 1))
        st.chosen[seq] = rec
        for other in copies:
            if other is not rec and st.archive and other.digest == rec.digest:
                redelivered += 1
            elif other is not rec:
                rep.problem(
                    "duplicate",
                    f"record {seq}: conflicting copy ({other.raw.where}) not linked by record {seq + 1}"
                    if other.digest != rec.digest
                    else f"record {seq}: duplicate ({other.raw.where})",
                    seq,
                )
    rep.records = len(st.chosen)
    if redelivered:
        rep.note(
            "redelivered",
            f"{redelivered} identical copies of records delivered more than once (at-least-once delivery)",
        )
    if st.seqs:
        rep.first_seq, rep.last_seq = st.seqs[0], st.seqs[-1]
    if st.pruned_through:
        rep.note("pruned", f"seq 1..{st.pruned_through} pruned by retention (not verifiable here)")


def check_records(rep: StreamReport, inp: StreamInput, st: StreamState) -> None:
    last_order = -1
    for seq in st.seqs:
        rec = st.chosen[seq]
        raw = rec.raw
        if text_of(raw.stream_col) != inp.sid or int_of(raw.seq_col) != seq:
            rep.problem(
                "out_of_order",
                f"record {seq}: out of order ({raw.where} says seq {raw.seq_col!r}, data says seq {seq})",
                seq,
            )
        elif raw.order < last_order and not st.archive:
            rep.problem("out_of_order", f"record {seq}: out of order (stored after a later record)", seq)
        last_order = max(last_order, raw.order)
        if not st.archive and text_of(raw.hash_col) != rec.digest:
            rep.problem("hash_mismatch", f"record {seq}: hash mismatch", seq)
            rec.flagged_hash = True
        if not is_canonical(rec.obj, rec.text):
            rep.problem("not_canonical", f"record {seq}: not in canonical form", seq)
        if seq <= st.pruned_through:
            rep.problem(
                "pruned_conflict", f"record {seq}: present although seq 1..{st.pruned_through} were pruned", seq
            )
        if seq == 1 and rec.event != S.EV_STREAM_START:
            rep.problem("no_start", "record 1: not a stream-start record", seq)
        if seq != 1 and rec.event == S.EV_STREAM_START:
            rep.problem("start", f"record {seq}: unexpected stream-start record", seq)
        if st.ended_at is not None and rec.event != S.EV_CHECKPOINT:
            rep.problem("after_end", f"record {seq}: after the stream-end marker (seq {st.ended_at})", seq)
        if rec.event == S.EV_STREAM_END and rec.obj["attributes"].get(S.A_SEQ_END) is True and st.ended_at is None:
            st.ended_at = seq


def check_links(rep: StreamReport, st: StreamState) -> None:
    expected = st.pruned_through + 1
    for seq in st.seqs:
        rec = st.chosen[seq]
        if seq > expected:
            if st.partial:
                rep.note("not_exported", f"seq {expected}..{seq - 1} not in this export (filtered)")
            elif expected == 1:
                rep.problem("gap", f"start missing: seq 1..{seq - 1} absent", seq)
            else:
                rep.problem("gap", f"gap after seq {expected - 1}", expected - 1)
        elif seq == expected:
            if seq == 1:
                if rec.prev is not None:
                    rep.problem("link", "record 1: the first record has a previous hash", seq)
            elif rec.prev is None:
                rep.problem("link", f"record {seq}: missing previous hash", seq)
            elif seq == st.pruned_through + 1:
                if st.pruned_head is not None and rec.prev != st.pruned_head:
                    rep.problem("link", f"record {seq}: previous hash does not match the pruned watermark", seq)
            else:
                before = st.chosen[seq - 1]
                if rec.prev != before.digest and not before.flagged_hash:
                    rep.problem(
                        "hash_mismatch",
                        f"record {seq - 1}: hash mismatch (record {seq} links to a different hash)",
                        seq - 1,
                    )
        expected = max(expected, seq + 1)


def find_stream_key(rep: StreamReport, inp: StreamInput, st: StreamState) -> None:
    start = st.chosen.get(1)
    if start is not None and isinstance(start.obj.get("body"), dict):
        body = start.obj["body"]
        st.start_key_id = body.get("integrity.key_id") if isinstance(body.get("integrity.key_id"), str) else None
        pub = body.get("integrity.public_key")
        if body.get("integrity.algorithm") == ALG_ED25519 and isinstance(pub, str):
            try:
                st.stream_key = VerifyKey.from_public(load_ed25519_public(pub.encode("ascii")), trusted=False)
            except (KeyFormatError, UnicodeEncodeError, ValueError):
                rep.problem("key", "stream start: unreadable public key")
            if st.stream_key is not None and st.stream_key.key_id != st.start_key_id:
                rep.problem("key", f"stream start: public key does not match key id {st.start_key_id}")
                st.stream_key = None
    elif start is None and st.pruned_through >= 1 and not inp.trusted:
        # The start record went with retention: the key kept beside the checkpoints (its id is a hash
        # of the public key, so a kept row cannot stand in for another key) checks what remains.
        key_ids = {c.statement["key_id"] for c in inp.cps.values()}
        kept = [inp.kept_keys[k] for k in sorted(key_ids) if k in inp.kept_keys]
        if len(kept) == 1:
            st.stream_key, where = kept[0]
            st.start_key_id = st.stream_key.key_id
            rep.note(
                "kept_key",
                f"stream start pruned: checkpoints checked against key {st.start_key_id} kept in the {where}",
            )
    rep.key_id = st.start_key_id
    if inp.trusted and st.start_key_id is not None and st.start_key_id not in inp.trusted:
        rep.problem("untrusted_key", f"stream start: key id {st.start_key_id} is not a trusted key")


def check_signatures(rep: StreamReport, inp: StreamInput, st: StreamState) -> None:
    unchecked_hmac = False
    for cp in st.ordered:
        key_id = cp.statement["key_id"]
        key = inp.trusted.get(key_id)
        if key is None and not inp.trusted and st.stream_key is not None and st.stream_key.key_id == key_id:
            key = st.stream_key
        if key is None:
            if inp.trusted:
                rep.problem(
                    "untrusted_key", f"checkpoint {cp.tree_size}: signed by untrusted key {key_id}", cp.tree_size
                )
                cp.valid_sig = False
            elif cp.statement["algorithm"] == ALG_HMAC:
                unchecked_hmac = True
            else:
                rep.problem("untrusted_key", f"checkpoint {cp.tree_size}: signed by unknown key {key_id}", cp.tree_size)
                cp.valid_sig = False
            continue
        if key.algorithm != cp.statement["algorithm"] or not key.verify(statement_bytes(cp.statement), cp.signature):
            rep.problem("bad_signature", f"checkpoint {cp.tree_size}: bad signature", cp.tree_size)
            cp.valid_sig = False
        else:
            cp.valid_sig = True
        if st.start_key_id is not None and key_id != st.start_key_id:
            rep.problem(
                "key", f"checkpoint {cp.tree_size}: key {key_id} differs from the stream start's {st.start_key_id}"
            )
    if unchecked_hmac:
        rep.note("unchecked", "HMAC-SHA256 checkpoint signatures not checked: give the key with --hmac-key-env VAR")


def check_checkpoint_chain(rep: StreamReport, st: StreamState) -> None:
    by_size: dict[int, list[Cp]] = defaultdict(list)
    for cp in st.ordered:
        by_size[cp.tree_size].append(cp)
    for size, group in by_size.items():
        if len(group) > 1:
            rep.problem(
                "conflict",
                f"checkpoint {size}: {len(group)} different checkpoints for one tree size (fork or forgery)",
                size,
            )
    previous: Cp | None = None
    for cp in st.ordered:
        prev_hash = cp.statement["previous_checkpoint_hash"]
        if previous is None:
            if prev_hash is not None:
                rep.problem("checkpoint_chain", f"checkpoint {cp.tree_size}: previous checkpoint missing", cp.tree_size)
        elif prev_hash != previous.hash and previous.tree_size != cp.tree_size:
            rep.problem(
                "checkpoint_chain", f"checkpoint {cp.tree_size}: previous checkpoint missing or different", cp.tree_size
            )
        previous = cp


def check_heads(rep: StreamReport, st: StreamState) -> None:
    anchored = 0
    for cp in st.ordered:
        size = cp.tree_size
        rec = st.chosen.get(size)
        if rec is not None:
            if rec.digest != cp.statement["head_hash"]:
                rep.problem("head_mismatch", f"checkpoint {size}: head hash mismatch (record {size} differs)", size)
            elif cp.valid_sig:
                anchored = max(anchored, size)
        elif size == st.pruned_through and st.pruned_head == cp.statement["head_hash"]:
            if cp.valid_sig:
                anchored = max(anchored, size)
        elif size == st.pruned_through and st.pruned_head is not None and cp.valid_sig:
            # the watermark names the hash of its last pruned record: a signed head at that seq must agree
            rep.problem("head_mismatch", f"checkpoint {size}: head hash differs from the pruned watermark's", size)
        elif size < st.pruned_through:
            if cp.valid_sig:
                anchored = max(anchored, size)
        elif size <= st.last_local and not st.partial:
            rep.note("head_missing", f"checkpoint {size}: record {size} is missing, head not checked", size)
    st.anchored = rep.anchored_through = anchored


def check_truncation(rep: StreamReport, inp: StreamInput, st: StreamState) -> None:
    last_local = st.last_local
    here = [c for c in st.ordered if c.valid_sig and c.sources - {"external", "log"}]
    local_top = max(here, key=lambda c: c.tree_size, default=None)
    ext_top = max(
        (c for c in st.ordered if c.valid_sig and "external" in c.sources), key=lambda c: c.tree_size, default=None
    )
    # The checkpoint log is a durability witness, not a signed anchor: a checkpoint whose signature could
    # not be checked (HMAC without the key) still tells that the records existed.
    log_top = max(
        (c for c in st.ordered if c.valid_sig is not False and "log" in c.sources),
        key=lambda c: c.tree_size,
        default=None,
    )
    if local_top is not None and local_top.tree_size > last_local:
        rep.problem(
            "truncated",
            f"truncated: seq {last_local + 1}..{local_top.tree_size} missing, but checkpoint {local_top.tree_size} "
            f"in {inp.evidence.label} covers them",
        )
    elif ext_top is not None and ext_top.tree_size > last_local:
        rep.problem(
            "rolled_back",
            f"rolled back: the stream ends at seq {last_local}, but checkpoint {ext_top.tree_size} "
            f"from {inp.external_label} covers seq {ext_top.tree_size} "
            "(an older copy of the outbox, or its tail cut together with its checkpoints)",
        )
    elif log_top is not None and log_top.tree_size > last_local:
        rep.problem(
            "missing",
            f"records missing: seq {last_local + 1}..{log_top.tree_size} are absent, "
            f"but checkpoint {log_top.tree_size} in {inp.log_label} covers them (lost with the database's "
            "newest transactions, e.g. its -wal file deleted while a process ran, or an older copy of the "
            "outbox put back)",
        )


def check_tail_and_end(rep: StreamReport, inp: StreamInput, st: StreamState) -> None:
    seqs, chosen = st.seqs, st.chosen
    if seqs and not st.partial:
        # Records after the last verified checkpoint, except the records that carry valid checkpoints
        # themselves (each is a signed statement, not an event).
        carriers_ok = {c.hash for c in st.ordered if c.valid_sig and c.tree_size >= st.anchored}
        tail = [
            s
            for s in seqs
            if s > st.anchored and not (chosen[s].event == S.EV_CHECKPOINT and carried(chosen[s]) in carriers_ok)
        ]
        if tail:
            rep.note(
                "unanchored_tail",
                f"unanchored tail: seq {tail[0]}..{seqs[-1]} (no signed checkpoint covers it yet; "
                "a cut here is detectable only with checkpoints held elsewhere)",
            )
    rep.ended_cleanly = st.ended_at is not None and not any(f.code == "after_end" for f in rep.problems)
    if rep.ended_cleanly:
        rep.note("ended", "stream ended cleanly")
    else:
        rep.note("end_unknown", "end unknown (no end marker: the process is running, crashed or was killed)")
    if st.ended_at is not None and not st.partial and not any(c.tree_size >= st.ended_at for c in st.ordered):
        # A clean end writes the end marker, then a checkpoint that covers it: an end marker without one
        # is a state no honest run leaves in its outbox (checkpoints stripped, records rewritten).
        message = (
            f"end marker at seq {st.ended_at} but no checkpoint covers it (a clean end always writes one after "
            "the end marker: checkpoints removed?)"
        )
        if st.archive:
            rep.note("end_unsigned", message + "; the backend may not have received it yet")
        else:
            rep.problem("end_unsigned", message, st.ended_at)
