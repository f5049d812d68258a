"""Turn a source (file, folder, glob, Hugging Face dataset) into rows: `(where, dict)`.

Rows are plain dicts exactly as published; readers (readers.py) turn them into pairs. Files are
opened and decoded by textfile.py (gzip, byte-order mark, CRLF, NUL bytes, encodings). JSONL is
parsed with the stdlib `json` line by line (pandas is slower and guesses types); a line that is not
JSON is dropped and reported with its line number, a whole file that is not UTF-8 is an error.
"""

from __future__ import annotations

import csv
import glob as globlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardsmith.data import textfile
from rewardsmith.data.report import DropReport
from rewardsmith.data.textfile import OnCut
from rewardsmith.errors import RewardsmithError

# Suffix (after stripping .gz) -> how to read it. `.txt` is read line by line as JSONL-ish text
# (the broken Korean hh-rlhf translation is a .txt of almost-JSON lines).
ROW_SUFFIXES = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".txt": "text"}
# Files that sit beside data and are never data (README.md is skipped by its suffix anyway).
NOT_DATA_NAMES = {"license", "licence", "notice", "readme", "copying", "dataset_info.json", "state.json",
                  "dataset_dict.json"}

csv.field_size_limit(1 << 30)  # hh-rlhf-style transcripts in a CSV cell exceed the 128 KiB default


@dataclass(frozen=True)
class Source:
    """One thing rows come from: a file on disk, or a Hugging Face dataset (hub id or saved folder)."""

    path: str
    kind: str  # "jsonl" | "json" | "csv" | "tsv" | "parquet" | "text" | "hf"
    split: str | None = None
    dataset: str = ""  # the name the user knows it by: the folder given, a file's folder, the hub id

    @property
    def name(self) -> str:
        return self.path if self.split is None else f"{self.path}[{self.split}]"


def file_kind(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return ROW_SUFFIXES.get(suffixes[-1]) if suffixes else None


def is_hf_folder(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def resolve(source: str | Path, split: str | None, report: DropReport) -> list[Source]:
    """Expand a file / folder / glob / dataset id into the list of sources to read, sorted.

    Raises RewardsmithError when nothing readable is found (naming what was looked at).
    """
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        if is_hf_folder(path):
            return [Source(str(path), "hf", split, path.resolve().name)]
        # Hidden files and folders (.git/, .cache/, .gitattributes) are never data.
        files = sorted(p for p in path.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        out = _files_to_sources(files, report, path.resolve().name)
        if not out:
            raise RewardsmithError(
                f"{path}: folder holds no readable data file (looked for "
                f"{', '.join(sorted(ROW_SUFFIXES))}, optionally .gz, or a save_to_disk dataset)"
            )
        return out
    if path.is_file():
        kind = file_kind(path)
        if kind is None:
            raise RewardsmithError(
                f"{path}: unknown file type {''.join(path.suffixes) or '(no suffix)'}; "
                f"readable: {', '.join(sorted(ROW_SUFFIXES))} (optionally .gz)"
            )
        return [Source(str(path), kind, dataset=path.resolve().parent.name)]
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in globlib.glob(text, recursive=True) if Path(p).is_file())
        fixed = Path(re.split(r"[*?\[]", text)[0] or ".")  # the folder part before the first wildcard
        fixed = fixed if text[len(str(fixed)):].startswith("/") or str(fixed).endswith("/") else fixed.parent
        out = _files_to_sources(files, report, fixed.resolve().name)
        if not out:
            raise RewardsmithError(f"{text}: the pattern matches no readable data file")
        return out
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        raise RewardsmithError(f"{text}: no such file or folder")
    # Anything else is a Hugging Face dataset id ("owner/name" or "name"), read by `datasets`.
    return [Source(text, "hf", split, text.split(":")[0])]


def _files_to_sources(files: list[Path], report: DropReport, dataset: str) -> list[Source]:
    out = []
    for p in files:
        kind = file_kind(p)
        if kind is None or p.name.lower() in NOT_DATA_NAMES or p.name.lower().split(".")[0] in NOT_DATA_NAMES:
            report.skipped[str(p)] = "not a data file"
            continue
        out.append(Source(str(p), kind, dataset=dataset))
    return out


def iter_jsonl(path: Path, on_cut: OnCut | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSON-lines file, streamed (files larger
    than memory), opened and decoded by `textfile.iter_lines` (gzip, byte-order mark, CRLF, NUL).
    A line that is not a JSON object stops the run with a RewardsmithError naming it.

    A .gz file is checked whole now, before its first row, unless `on_cut` is given (then the rows
    before a break are read and `on_cut` is told of it): the callers write as they read, and a file
    they refuse must leave nothing written."""
    if on_cut is None and path.name.lower().endswith(".gz"):
        textfile.check_gzip(path)
    return _jsonl_objects(path, on_cut)


def _jsonl_objects(path: Path, on_cut: OnCut | None) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in textfile.iter_lines(path, on_cut):
        if not line.strip():
            continue
        row, error = parse_line(line)
        if error:
            raise RewardsmithError(f"{path}:{number}: not JSON ({error}); one object per line")
        if not isinstance(row, dict):
            raise RewardsmithError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def parse_line(line: str) -> tuple[Any, str | None]:
    """(value, None) for a line of JSON, or (None, what is wrong with it)."""
    try:
        return json.loads(line), None
    except json.JSONDecodeError as e:
        return None, f"{e.msg} at column {e.colno}"
    except RecursionError:  # the C parser recurses once per nesting level: [[[[...]]]] runs out of stack
        return None, "nested too deeply"
    except ValueError as e:  # an integer longer than int_max_str_digits (4300 digits)
        return None, str(e)


def cut_torn_last_line(path: Path, block: int = 1 << 16) -> None:
    """Remove a last line that has no final newline (a write cut short by a kill), so a resuming
    run redoes that row instead of appending to half of it. Reads only the file's tail."""
    with path.open("r+b") as f:
        end = f.seek(0, 2)
        if end == 0:
            return
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return
        at = end
        while at > 0:  # back to the last newline, a block at a time
            start = max(0, at - block)
            f.seek(start)
            newline = f.read(at - start).rfind(b"\n")
            if newline >= 0:
                f.truncate(start + newline + 1)
                return
            at = start
        f.truncate(0)


def iter_rows(src: Source, report: DropReport, keep_partial: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield `(where, row)` for every row of one source; malformed rows are dropped into `report`.

    keep_partial: a .gz file whose stream breaks gives the rows before the break, and the break is
    counted as a drop ("file cut short"); without it the break is a RewardsmithError.
    """
    if src.kind == "hf":
        yield from _iter_hf(src)
        return
    if src.kind == "parquet":
        yield from _iter_parquet(src.path)
        return

    def on_cut(e: textfile.GzipBroken) -> None:
        report.drop("file cut short", f"{e.path}:{e.line}", f"{e.detail}; the rest is lost")

    cut = on_cut if keep_partial else None
    if src.kind in ("jsonl", "text"):
        yield from _json_lines(src.path, textfile.iter_lines(src.path, cut), report)
        return
    text = textfile.read_text(src.path, cut)
    if src.kind == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            if "\n{" in text[:100_000]:  # JSON lines saved as .json: read it as what it is
                lines = ((i, line.removesuffix("\r")) for i, line in enumerate(text.split("\n"), 1))
                yield from _json_lines(src.path, lines, report)
                return
            raise RewardsmithError(f"{src.path}:{e.lineno}: invalid JSON ({e.msg}, column {e.colno})") from None
        except (RecursionError, ValueError) as e:  # nesting deeper than the stack; a 5000-digit integer
            raise RewardsmithError(f"{src.path}: invalid JSON ({type(e).__name__}: {e})") from None
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise RewardsmithError(
                    f"{src.path}: expected a JSON list of rows (or an object holding one list); "
                    f"got an object with keys {sorted(data)[:10]}"
                )
            data = lists[0]
        if not isinstance(data, list):
            raise RewardsmithError(f"{src.path}: expected a JSON list of rows, got {type(data).__name__}")
        for i, row in enumerate(data):
            where = f"{src.path}[{i}]"
            if isinstance(row, dict):
                yield where, row
            else:
                report.drop("not a JSON object", where, f"got {type(row).__name__}")
    else:  # csv / tsv
        yield from _csv_rows(src, text, report)


def _json_lines(path: str, lines: Iterable[tuple[int, str]], report: DropReport) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of JSON lines; a line that is not JSON is passed on as {"__line__", "__error__"}."""
    for i, line in lines:
        if not line.strip():
            continue
        where = f"{path}:{i}"
        row, error = parse_line(line)
        if error:
            # A .txt file may be almost-JSON (ko-hh-rlhf); its reader gets the raw line instead.
            yield where, {"__line__": line, "__error__": f"invalid JSON ({error})"}
            continue
        if not isinstance(row, dict):
            report.drop("not a JSON object", where, f"got {type(row).__name__}")
            continue
        yield where, row


def _csv_rows(src: Source, text: str, report: DropReport) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if src.kind == "tsv" else ",")
    try:
        header = next(reader, None)
        if not header:
            raise RewardsmithError(f"{src.path}: empty CSV file (no header row)")
        start = reader.line_num + 1
        for cells in reader:
            where = f"{src.path}:{start}"
            start = reader.line_num + 1
            if not cells:
                continue
            if len(cells) != len(header):
                report.drop("wrong number of CSV fields", where, f"{len(cells)} fields, header has {len(header)}")
                continue
            yield where, dict(zip(header, cells, strict=True))
    except csv.Error as e:  # the csv module's own complaints (a field over field_size_limit, ...)
        raise RewardsmithError(f"{src.path}:{reader.line_num}: not readable as CSV ({e})") from None


def _iter_parquet(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise RewardsmithError(f"{path}: not a readable Parquet file ({e})") from None
    i = 0
    for batch in pf.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield f"{path}[{i}]", row
            i += 1


def _iter_hf(src: Source) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a Hugging Face dataset: a saved folder (`load_from_disk`) or a hub id (`load_dataset`).

    Without a split every split is read, and the split name becomes the row's `__split__` (used as
    the subset when the row has none). A hub id takes an optional config as `id:config`.
    """
    import datasets

    path = Path(src.path)
    try:
        if path.is_dir():
            ds = datasets.load_from_disk(str(path))
        else:
            name, _, config = src.path.partition(":")
            ds = datasets.load_dataset(name, config or None)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as e:
        raise RewardsmithError(
            f"{src.path}: cannot load this dataset ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "give a local file or folder, or a Hugging Face id reachable from this machine"
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        wanted = [s.strip() for s in src.split.split("+")] if src.split else list(ds)
        missing = [s for s in wanted if s not in ds]
        if missing:
            raise RewardsmithError(f"{src.path}: no split {missing[0]!r}; it has splits {list(ds)}")
        parts = [(s, ds[s]) for s in wanted]
    else:
        parts = [(src.split, ds)]
    for split, part in parts:
        for i, row in enumerate(part):
            row = dict(row)
            if split:
                row.setdefault("__split__", split)
            yield f"{src.path}[{split or 'data'}]#{i}", row
