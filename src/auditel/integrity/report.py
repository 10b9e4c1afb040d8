"""The result of a verification: findings per stream and overall, as text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Finding:
    code: str
    message: str
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.seq is not None:
            out["seq"] = self.seq
        return out


@dataclass
class StreamReport:
    stream_id: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    pruned_through: int = 0
    checkpoints: int = 0
    anchored_through: int = 0
    key_id: str | None = None
    ended_cleanly: bool = False
    problems: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)

    def problem(self, code: str, message: str, seq: int | None = None) -> None:
        self.problems.append(Finding(code, message, seq))

    def note(self, code: str, message: str, seq: int | None = None) -> None:
        self.notes.append(Finding(code, message, seq))

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "pruned_through": self.pruned_through,
            "checkpoints": self.checkpoints,
            "anchored_through": self.anchored_through,
            "key_id": self.key_id,
            "end": "clean" if self.ended_cleanly else "unknown",
            "ok": not self.problems,
            "problems": [f.as_dict() for f in self.problems],
            "notes": [f.as_dict() for f in self.notes],
        }


@dataclass
class Report:
    source: str
    streams: list[StreamReport] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(not s.problems for s in self.streams)

    def strict_ok(self) -> bool:
        """Also require every stream to be fully anchored and cleanly ended."""
        return self.ok and all(
            s.ended_cleanly and not any(n.code == "unanchored_tail" for n in s.notes) for s in self.streams
        )

    def all_messages(self) -> list[str]:
        out = [f.message for f in self.problems + self.notes]
        for s in self.streams:
            out += [f.message for f in s.problems + s.notes]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "streams": [s.as_dict() for s in self.streams],
            "problems": [f.as_dict() for f in self.problems],
            "notes": [f.as_dict() for f in self.notes],
            "summary": {
                "streams": len(self.streams),
                "records": sum(s.records for s in self.streams),
                "problems": len(self.problems) + sum(len(s.problems) for s in self.streams),
            },
        }

    def render(self) -> str:
        lines = [f"verifying {self.source}"]
        for f in self.problems:
            lines.append(f"  PROBLEM {f.message}")
        for f in self.notes:
            lines.append(f"  note    {f.message}")
        for s in self.streams:
            span = f"seq {s.first_seq}..{s.last_seq}" if s.first_seq is not None else "no records"
            key = f", key {s.key_id}" if s.key_id else ""
            lines.append(f"stream {s.stream_id}: {s.records} records ({span}), {s.checkpoints} checkpoints{key}")
            for f in s.problems:
                lines.append(f"  PROBLEM {f.message}")
            for f in s.notes:
                lines.append(f"  note    {f.message}")
        total = len(self.problems) + sum(len(s.problems) for s in self.streams)
        lines.append("OK: everything present verifies" if total == 0 else f"FAILED: {total} problem(s)")
        return "\n".join(lines)
