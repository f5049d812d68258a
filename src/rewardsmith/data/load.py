"""`load_pairs`: any source -> validated `PreferencePair`s plus a `DropReport` of what was dropped and why.

    result = load_pairs("../shared/data/hh-rlhf-test")            # a folder: every data file in it
    result = load_pairs("train.jsonl", columns={"prompt": "question"})
    result = load_pairs(preset="helpsteer3-ja", source="/data/helpsteer3")   # a card's filters
    print(result.report.render())

Steps: resolve the source into files / datasets (files.py), read rows, pick each file's format
from its first row (formats.py), turn rows into pairs (readers.py, named.py), drop damaged text
(mojibake.py), apply the preset's filters (filters.py), count what is kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardsmith.data import files, filters, objectives
from rewardsmith.data.common import BadRow, RowContext, check_pair, normalize_language
from rewardsmith.data.formats import FORMATS, Format, check_columns, detect, get_format
from rewardsmith.data.mojibake import find_mojibake, has_replacement_char
from rewardsmith.data.record import PreferencePair
from rewardsmith.data.report import DropReport
from rewardsmith.errors import RewardsmithError

# Formats whose pairs span rows: the reader gets every row of a file at once.
GROUPED = {"square"}
# Formats that read lines which are not valid JSON themselves (as {"__line__": text}).
RAW_LINES = {"ko-hh-rlhf-deepl"}


@dataclass
class LoadResult:
    pairs: list[PreferencePair]
    report: DropReport


def load_pairs(
    source: str | Path | None = None,
    *,
    format: str | None = None,
    split: str | None = None,
    columns: Mapping[str, str] | None = None,
    preset: str | None = None,
    language: str | None = None,
    objective: str | None = None,
    labeler: str | None = None,
    keep_partial: bool = False,
) -> LoadResult:
    """Read preference pairs from a file, folder, glob, Hugging Face dataset id or saved dataset folder.

    format:   a name from `formats.FORMATS`; detected per file from its first row when None.
    split:    for Hugging Face datasets ("train", "train+validation"); every split when None.
    columns:  {our name: their column}, e.g. {"prompt": "question", "chosen": "good"}.
    preset:   a name from `presets.PRESETS` (a card's source, format, split and filters);
              `source` then overrides where the data is read from (a local copy).
    language: the data's language ("ko", "japanese"): rows that do not say get it, rows in
              another language are dropped (reason "language != ko").
    objective: what the labels judged (`objectives.OBJECTIVES`), for pairs whose format and rows
              do not say; known datasets set their own (hh-rlhf by subset, KUDGE correctness, ...).
    labeler:  who labelled them ("human" | "llm-judge"), likewise for pairs that do not say.
    keep_partial: a .gz file whose stream breaks (cut short, corrupt) gives the rows before the
              break, and the break is counted ("file cut short"); without it, it is an error.
    Pairs with an empty or whitespace-only response, or the same response on both sides, are
    dropped and counted ("empty response", "chosen == rejected") whatever the format.
    Returns LoadResult(pairs, report). Raises RewardsmithError for a source that is wrong as a
    whole (missing, unreadable, not UTF-8, missing columns) with the fix in the message.
    """
    steps: list[filters.Filter] = []
    name = None  # the dataset's name in ids and reports, when a preset gives one
    if preset is not None:
        from rewardsmith.data.presets import get_preset

        p = get_preset(preset)
        if source is None and p.hub_id is None:
            raise RewardsmithError(
                f"preset {p.name!r} has no Hugging Face copy ({p.card}); download it and pass its "
                "folder or file as the source"
            )
        source = source if source is not None else p.hub_id
        format = format or p.format
        local = Path(str(source))
        if local.is_dir() and not files.is_hf_folder(local) and p.files and any(local.glob(p.files)):
            source = str(local / p.files)  # a local copy of the whole set: the files the preset names
        if not local.exists() or files.is_hf_folder(local):
            split = split or p.split  # a hub id or a saved dataset: the card's split(s)
        steps = list(p.filters)
        name = p.source_name
        language = language or p.language
        objective = objective or p.objective
        labeler = labeler or p.labeler
    if source is None:
        raise RewardsmithError("load_pairs: give a source (file, folder, glob or dataset id) or a preset")
    lang = normalize_language(language) if language else None
    objectives.check_objective(objective)
    objectives.check_labeler(labeler)
    fmt = get_format(format) if format else None
    report = DropReport()
    pairs: list[PreferencePair] = []
    sources = files.resolve(source, split, report)
    sources = _merge_companions(sources, report)
    for src in sources:
        before = report.dropped.copy()
        got = _read_source(src, fmt, columns, lang, name, report, keep_partial)
        if got:
            use = FORMATS[report.files[src.name]]
            objectives.label(got, use.objective, use.labeler or labeler, default=objective)
        _check_not_all_wrong(src, got, report.dropped - before, report)
        pairs.extend(got)
    pairs = _drop_mojibake(pairs, report)
    if lang:
        steps.insert(0, filters.language_is(lang))
    for step in steps:
        pairs = step(pairs, report)
    report.count_kept(pairs)
    return LoadResult(pairs, report)


def _merge_companions(sources: list[files.Source], report: DropReport) -> list[files.Source]:
    """SQuARe ships X.json and X_annotations.json (same rows + raw annotations): read the richer one once."""
    names = {s.path for s in sources}
    out = []
    for s in sources:
        if s.path.endswith(".json") and s.path[:-5] + "_annotations.json" in names:
            report.skipped[s.path] = (f"same rows as {Path(s.path).stem}_annotations.json, which adds raw "
                                      "annotations (read that)")
            continue
        out.append(s)
    return out


def _names(src: files.Source, fmt: Format, name: str | None) -> tuple[str, str | None]:
    """(source, default subset): the dataset's name from the format, the preset or the folder given;
    the subset from the split or the file name ("harmless-base.test.jsonl.gz" -> "harmless-base")."""
    source = fmt.source or name or src.dataset
    if src.kind == "hf":
        return source, src.split
    path = Path(src.path)
    stem = re.sub(r"_annotations$", "", path.name.split(".")[0])
    if fmt.name == "hh-rlhf" and stem in ("train", "test"):
        stem = path.parent.name  # Anthropic's layout: harmless-base/test.jsonl.gz -> "harmless-base"
    return source, stem


def _read_source(
    src: files.Source, fmt: Format | None, columns: Mapping[str, str] | None, lang: str | None,
    name: str | None, report: DropReport, keep_partial: bool,
) -> list[PreferencePair]:
    rows = files.iter_rows(src, report, keep_partial)
    # The format is told by the first JSON row; lines before it that are not JSON are kept for the
    # reader (a raw-line format) or dropped as invalid JSON, not used to guess.
    head: list[tuple[str, dict]] = []
    for where, row in rows:
        head.append((where, row))
        if "__line__" not in row or fmt is not None or any(FORMATS[f].matches(row) for f in RAW_LINES):
            break
    if not head:
        report.skipped[src.name] = "no rows"
        return []
    where0, row0 = head[-1]
    if columns and "__line__" not in row0:
        _check_mapping(columns, row0, where0)
    use = fmt or detect(_rename(row0, columns), where0)
    if "__line__" not in row0:  # an almost-JSON text line has no columns to check
        check_columns(use, _rename(row0, columns), where0)
    report.files[src.name] = use.name
    source_name, subset = _names(src, use, name)
    default_lang = lang or use.language

    def all_rows():
        for where, row in head:
            yield where, _rename(row, columns)
        for where, row in rows:
            yield where, _rename(row, columns)

    out: list[PreferencePair] = []
    if use.name in GROUPED:
        good = []
        for where, row in all_rows():
            if "__line__" in row:
                report.drop("invalid JSON", where, row["__error__"])
            else:
                good.append((where, row))
        ctx = RowContext(src.name, 0, source_name, subset, default_lang)
        for pair in use.read(good, ctx, report):  # pairs built from several rows: named by id
            _keep_usable(pair, f"{src.name}: {pair.id}", out, report)
        return out
    for index, (where, row) in enumerate(all_rows()):
        if "__line__" in row and use.name not in RAW_LINES:
            report.drop("invalid JSON", where, row["__error__"])
            continue
        ctx = RowContext(where, index, source_name, subset, default_lang)
        try:
            for pair in use.read(row, ctx, report):
                _keep_usable(pair, where, out, report)
        except BadRow as e:
            report.drop(e.reason, where, e.detail)
        except KeyError as e:
            report.drop("missing field", where, f"no column {e.args[0]!r}")
    return out


def _keep_usable(pair: PreferencePair, where: str, out: list[PreferencePair], report: DropReport) -> None:
    """Append a pair that can teach something; count one that cannot (common.check_pair)."""
    try:
        check_pair(pair)
    except BadRow as e:
        report.drop(e.reason, where, e.detail)
        return
    out.append(pair)


# Reasons that mean the file's layout, not a row, is wrong when every row fails with them.
_SCHEMA_REASONS = {"wrong type", "bad message", "missing field", "not a JSON object"}


def _check_not_all_wrong(src: files.Source, got: list[PreferencePair], dropped, report: DropReport) -> None:
    """A file whose every row fails for one schema reason is wrong as a whole: say so, with the fix."""
    if got or len(dropped) != 1:
        return
    (reason,) = dropped
    if reason in _SCHEMA_REASONS:
        example = report.examples[reason][0]
        raise RewardsmithError(
            f"{src.name}: every row failed with '{reason}' (first: {example}); the file does not have the "
            f"layout of format {report.files.get(src.name)!r}: map its columns (--column OURS=THEIRS) or "
            "pick the right --format"
        )


def _check_mapping(columns: Mapping[str, str], row: dict[str, Any], where: str) -> None:
    missing = {ours: theirs for ours, theirs in columns.items() if theirs not in row}
    if missing:
        cols = sorted(k for k in row if not k.startswith("__"))
        raise RewardsmithError(
            f"{where}: column mapping names column(s) {sorted(missing.values())} that the file does not "
            f"have; its columns are {cols}"
        )


def _rename(row: dict[str, Any], columns: Mapping[str, str] | None) -> dict[str, Any]:
    if not columns:
        return row
    row = dict(row)
    for ours, theirs in columns.items():
        if theirs in row:
            row[ours] = row.pop(theirs)
    return row


def _drop_mojibake(pairs: list[PreferencePair], report: DropReport) -> list[PreferencePair]:
    """Text damaged by a wrong decoding is reported and never trained on."""
    out = []
    for p in pairs:
        texts = {"chosen": p.chosen, "rejected": p.rejected}
        texts.update({f"prompt[{i}]": m["content"] for i, m in enumerate(p.prompt)})
        hit = find_mojibake(texts)
        if not hit and any(has_replacement_char(t) for t in texts.values()):
            report.flag("text holds U+FFFD replacement characters (bytes lost upstream; kept)", p.id)
        if hit:
            field, codec, excerpt = hit
            report.drop("mojibake", p.id, f"{field} looks like UTF-8 read as {codec}: {excerpt!r}")
        else:
            out.append(p)
    return out


__all__ = ["LoadResult", "load_pairs", "FORMATS"]
