"""Offline verification of an outbox, an export or a backend's OTLP/JSON archive: chain, markers,
checkpoints, truncation.

Everything read is untrusted input (see ``sources``: the outbox is opened read-only, with
``trusted_schema=OFF`` and ``query_only=ON``, only plain tables are read, every value's type is
checked). Per stream the verifier recomputes each record's SHA-256 over its stored bytes, checks that
the bytes are the canonical (RFC 8785) form of what they say, that sequence numbers are contiguous
from 1 (or from the ``pruned`` watermark), that each ``previous_hash`` is the *recomputed* hash of the
record before, that the stream starts with ``auditel.stream.start`` and that nothing but checkpoints
follows ``auditel.stream.end`` (and that a checkpoint covers that end marker). It checks the checkpoint
chain, each signature, and that the record at each checkpoint's ``tree_size`` has the signed
``head_hash``; with checkpoints held elsewhere (``--checkpoints FILE``) it finds truncation and rollback,
and with the checkpoint log beside the outbox, records lost with the database's newest transactions.
It reports discontinuities, not intent: honest data loss looks like deletion.

The work is split: ``sources`` and ``export_format`` read, ``parsing`` parses, ``checks`` holds one
function per phase of a stream's checks, ``report`` renders. This module ties them together and keeps
the names other code imports from here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from auditel.integrity.checks import StreamInput, verify_stream
from auditel.integrity.evidence import (
    MAX_DATA_BYTES,
    MAX_LINE_BYTES,
    Evidence,
    RawCheckpoint,
    RawRecord,
)
from auditel.integrity.export_format import load_export
from auditel.integrity.parsing import Cp, Rec, parse_checkpoint, parse_record
from auditel.integrity.report import Finding, Report, StreamReport
from auditel.integrity.signing import (
    ALG_ED25519,
    KeyFormatError,
    VerifyKey,
    load_ed25519_public,
)
from auditel.integrity.sources import (
    carriers_as_checkpoints,
    load_archive,
    load_checkpoint_log,
    load_checkpoints_file,
    load_outbox,
    load_public_key_file,
    open_readonly,
    readable_tables,
)

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_LINE_BYTES",
    "Evidence",
    "Finding",
    "RawCheckpoint",
    "RawRecord",
    "Report",
    "StreamReport",
    "carriers_as_checkpoints",
    "load_archive",
    "load_checkpoints_file",
    "load_export",
    "load_outbox",
    "load_public_key_file",
    "open_readonly",
    "readable_tables",
    "verify",
    "verify_path",
]


def _kept_keys(evidence: Evidence, problems: list[str]) -> dict[str, tuple[VerifyKey, str]]:
    """The Ed25519 keys kept through retention, by key id; a row whose public key does not hash to its
    key id is reported and not used."""
    out: dict[str, tuple[VerifyKey, str]] = {}
    for where, key_id, algorithm, public in evidence.signing_keys:
        if algorithm != ALG_ED25519 or not isinstance(key_id, str) or not isinstance(public, str):
            problems.append(f"{where}: malformed signing key row")
            continue
        try:
            key = VerifyKey.from_public(load_ed25519_public(public.encode("ascii")), trusted=False)
        except (KeyFormatError, UnicodeEncodeError, ValueError):
            problems.append(f"{where}: unreadable public key for {key_id[:60]}")
            continue
        if key.key_id != key_id:
            problems.append(f"{where}: public key does not match key id {key_id[:60]}")
            continue
        out[key_id] = (key, where)
    return out


def verify(
    evidence: Evidence,
    *,
    external: Iterable[RawCheckpoint] = (),
    external_label: str = "the checkpoints file",
    keys: Iterable[VerifyKey] = (),
    stream: str | None = None,
    log_label: str = "the checkpoint log",
) -> Report:
    """Check ``evidence`` (and checkpoints held elsewhere, ``external``) stream by stream."""
    report = Report(evidence.source)
    for message in evidence.problems:
        report.problems.append(Finding("unreadable", message))
    for message in evidence.notes:
        report.notes.append(Finding("note", message))
    trusted = {k.key_id: k for k in keys}
    global_problems: list[str] = []

    recs: dict[str, dict[int, list[Rec]]] = defaultdict(lambda: defaultdict(list))
    for raw in evidence.records:
        try:
            rec = parse_record(raw, global_problems)
        except Exception as exc:  # noqa: BLE001 - never crash on hostile input
            global_problems.append(f"{raw.where}: unreadable ({type(exc).__name__})")
            continue
        if rec is not None:
            recs[rec.stream_id][rec.seq].append(rec)

    cps: dict[str, dict[str, Cp]] = defaultdict(dict)
    for raw_cp in list(evidence.checkpoints) + list(external):
        try:
            cp = parse_checkpoint(raw_cp, global_problems)
        except Exception as exc:  # noqa: BLE001
            global_problems.append(f"{raw_cp.where}: unreadable checkpoint ({type(exc).__name__})")
            continue
        if cp is None:
            continue
        known = cps[cp.stream_id].get(cp.hash)
        if known is None:
            cps[cp.stream_id][cp.hash] = cp
        else:
            known.sources |= cp.sources
            known.wheres += cp.wheres
            if known.signature != cp.signature and not isinstance(known.signature, str):
                known.signature = cp.signature

    pruned: dict[str, tuple[int, str | None]] = {}
    for where, sid, through, head in evidence.pruned:
        bad_head = head is not None and not isinstance(head, str)
        if not isinstance(sid, str) or type(through) is not int or through < 0 or bad_head:
            global_problems.append(f"{where}: malformed pruned row")
            continue
        if sid not in pruned or through > pruned[sid][0]:
            pruned[sid] = (through, head)

    kept_keys = _kept_keys(evidence, global_problems)
    local_streams = set(recs) | {s for s in evidence.streams if isinstance(s, str)} | set(pruned)
    local_streams |= {sid for sid, group in cps.items() if any(c.sources - {"external", "log"} for c in group.values())}
    for sid in sorted(local_streams):
        if stream is not None and sid != stream:
            continue
        try:
            report.streams.append(
                verify_stream(
                    StreamInput(
                        sid,
                        recs.get(sid, {}),
                        cps.get(sid, {}),
                        pruned.get(sid),
                        trusted,
                        external_label,
                        evidence,
                        kept_keys,
                        log_label,
                    )
                )
            )
        except Exception as exc:  # noqa: BLE001 - a verifier bug must still produce a report
            report.problems.append(Finding("internal", f"stream {sid}: verifier error {type(exc).__name__}: {exc}"))

    local_origins = {c.statement["origin"] for sid in local_streams for c in cps.get(sid, {}).values()}
    foreign = 0
    for sid, group in cps.items():
        if sid in local_streams or (stream is not None and sid != stream):
            continue
        top = max(group.values(), key=lambda c: c.tree_size)
        if all(c.sources == {"log"} for c in group.values()):
            report.problems.append(
                Finding(
                    "missing",
                    f"records missing: stream {sid} is absent from {evidence.label}, but checkpoint {top.tree_size} "
                    f"in {log_label} covers seq 1..{top.tree_size} (lost with the database's newest transactions?)",
                )
            )
        elif top.statement["origin"] in local_origins or stream is not None:
            report.problems.append(
                Finding(
                    "rolled_back",
                    f"rolled back: stream {sid} is missing from {evidence.label}, but checkpoint {top.tree_size} "
                    f"from {external_label} covers seq 1..{top.tree_size}",
                )
            )
        else:
            foreign += 1
    if foreign:
        report.notes.append(Finding("note", f"{external_label} has {foreign} stream(s) from other origins: ignored"))
    for message in global_problems:
        report.problems.append(Finding("malformed", message))
    if trusted:
        report.notes.append(Finding("note", "trusted key(s): " + ", ".join(sorted(trusted))))
    elif any(report.streams):
        report.notes.append(
            Finding(
                "key_not_pinned",
                "signatures checked against the key recorded in each stream start (not pinned): pass --public-key "
                "(or --hmac-key-env) to also detect a rewrite by someone without your key",
            )
        )
    return report


def verify_path(
    path: str | Path,
    *,
    from_export: bool = False,
    from_archive: Iterable[str | Path] | None = None,
    checkpoints_file: str | Path | None = None,
    keys: Iterable[VerifyKey] = (),
    stream: str | None = None,
) -> Report:
    """Load and verify an outbox, an export (``from_export``: ``path`` is one) or a backend's OTLP/JSON
    archive files (``from_archive``: ``path`` is ignored), optionally against checkpoints held elsewhere."""
    if from_archive is not None:
        evidence = load_archive(from_archive)
    else:
        evidence = load_export(path) if from_export else load_outbox(path)
    carriers_as_checkpoints(evidence)
    external: list[RawCheckpoint] = []
    label = "the checkpoints file"
    if checkpoints_file is not None:
        external = load_checkpoints_file(checkpoints_file, evidence.problems)
        label = str(checkpoints_file)
    log_label = "the checkpoint log"
    if from_archive is None and not from_export:
        logged, log_file = load_checkpoint_log(path, evidence.problems)
        external += logged
        if log_file is not None:
            log_label = f"the checkpoint log {log_file}"
    return verify(evidence, external=external, external_label=label, keys=keys, stream=stream, log_label=log_label)
