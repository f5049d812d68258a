"""What a load kept and what it dropped, and why: the `DropReport`.

Nothing is dropped silently. Every reader and filter that throws a row away calls
`report.drop(reason, where, detail)`; `where` is `file:line` (or `file[item]` for JSON/Parquet,
`dataset[split]#row` for Hugging Face datasets), so a user can open the row. The first few
examples per reason are kept; the count is exact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rewardsmith.data.record import PreferencePair

MAX_EXAMPLES = 3  # examples kept per reason: enough to find the pattern, short enough to read


@dataclass
class DropReport:
    """Counts of dropped rows by reason (with examples), kept pairs by source/subset/language, notes.

    dropped:  reason -> number of rows dropped for it ("invalid json", "tie", "mojibake", ...).
    examples: reason -> up to MAX_EXAMPLES strings "file:line: detail".
    kept:     (source, subset, language) -> number of pairs kept (filled by `count_kept`).
    mixture:  (language, objective, labeler) -> pairs kept: what the labels mean (data.objectives).
    flagged:  reason -> number of pairs KEPT but worth knowing about (e.g. hh-rlhf pairs whose
              rejected side differs before the last turn), with examples in `flag_examples`.
    files:    files (or datasets) read, with the format used for each.
    skipped:  files in a folder that were not data (README.md, LICENSE) -> why.
    """

    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    kept: Counter = field(default_factory=Counter)
    mixture: Counter = field(default_factory=Counter)
    flagged: Counter = field(default_factory=Counter)
    flag_examples: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def drop(self, reason: str, where: str, detail: str = "") -> None:
        self.dropped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < MAX_EXAMPLES:
            ex.append(f"{where}: {detail}" if detail else where)

    def flag(self, reason: str, where: str, detail: str = "") -> None:
        self.flagged[reason] += 1
        ex = self.flag_examples.setdefault(reason, [])
        if len(ex) < MAX_EXAMPLES:
            ex.append(f"{where}: {detail}" if detail else where)

    def count_kept(self, pairs: list[PreferencePair]) -> None:
        """Recount `kept` from the final pairs (call after the last filter)."""
        self.kept = Counter((p.source, p.subset, p.language) for p in pairs)
        self.mixture = Counter((p.language, p.objective, p.labeler) for p in pairs)

    @property
    def n_kept(self) -> int:
        return sum(self.kept.values())

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def kept_by(self, key: str) -> Counter:
        """Kept counts by one of "source", "subset", "language"."""
        i = ("source", "subset", "language").index(key)
        out: Counter = Counter()
        for k, n in self.kept.items():
            out[k[i]] += n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": self.n_kept,
            "dropped": self.n_dropped,
            "dropped_by_reason": dict(self.dropped.most_common()),
            "drop_examples": self.examples,
            "flagged": dict(self.flagged.most_common()),
            "flag_examples": self.flag_examples,
            "kept_by_source": _str_keys(self.kept_by("source")),
            "kept_by_subset": _str_keys(self.kept_by("subset")),
            "kept_by_language": _str_keys(self.kept_by("language")),
            "kept_by_source_subset_language": [
                {"source": s, "subset": sub, "language": lang, "pairs": n}
                for (s, sub, lang), n in sorted(self.kept.items(), key=lambda kv: tuple(map(str, kv[0])))
            ],
            "kept_by_language_objective_labeler": [
                {"language": lang, "objective": obj, "labeler": who, "pairs": n}
                for (lang, obj, who), n in sorted(self.mixture.items(), key=lambda kv: tuple(map(str, kv[0])))
            ],
            "files": self.files,
            "skipped_files": self.skipped,
        }

    def render(self) -> str:
        """A plain-text summary for a terminal."""
        lines = [f"kept {self.n_kept} pairs, dropped {self.n_dropped} rows"]
        if self.kept:
            lines.append("kept by source / subset / language:")
            for (s, sub, lang), n in sorted(self.kept.items(), key=lambda kv: tuple(map(str, kv[0]))):
                lines.append(f"  {s} / {sub or '-'} / {lang or '?'}: {n}")
        if self.mixture:
            lines.append("kept by language / objective / labeler (what the labels mean):")
            for (lang, obj, who), n in sorted(self.mixture.items(), key=lambda kv: tuple(map(str, kv[0]))):
                lines.append(f"  {lang or '?'} / {obj or 'unknown objective'} / {who or 'unknown labeler'}: {n}")
            if any(obj is None for _, obj, _ in self.mixture):
                lines.append("  (an unknown objective: give the source's with --objective, or `objective:` in a "
                             "training config's data entry)")
        if self.dropped:
            lines.append("dropped by reason:")
            for reason, n in self.dropped.most_common():
                lines.append(f"  {reason}: {n}")
                lines.extend(f"      e.g. {_clip(e)}" for e in self.examples.get(reason, []))
        if self.flagged:
            lines.append("kept, but note:")
            for reason, n in self.flagged.most_common():
                lines.append(f"  {reason}: {n}")
                lines.extend(f"      e.g. {_clip(e)}" for e in self.flag_examples.get(reason, []))
        if self.skipped:
            lines.append("files skipped:")
            lines.extend(f"  {f}: {why}" for f, why in self.skipped.items())
        return "\n".join(lines)


def _str_keys(c: Counter) -> dict[str, int]:
    return {str(k) if k is not None else "unknown": n for k, n in c.most_common()}


def _clip(s: str, n: int = 160) -> str:
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 1] + "…"
