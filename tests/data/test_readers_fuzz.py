"""Property-based tests of the readers (issue 27): whatever the file, `load_pairs` gives pairs or a
RewardsmithError -- never another exception -- and every row read is kept or counted as dropped.

Inputs: arbitrary bytes as .jsonl/.json/.csv/.jsonl.gz files (and valid files with bytes flipped,
inserted, or the gzip stream cut short); arbitrary JSON values and nesting; arbitrary Unicode
(lone surrogates through JSON escapes, RTL marks, combining characters, emoji, NUL, U+2028, BOM);
rows of every format in `formats.FORMATS` with fields removed, retyped, renamed or re-texted.

`make test` runs the "rewardsmith-data" profile: derandomized (the same examples every run) and
bounded (400 examples a test, 2,000 in all). The long profile, by hand, draws new examples each run:

    HYPOTHESIS_PROFILE=long pytest -q -p no:xdist tests/data/test_readers_fuzz.py
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewardsmith.data import load_pairs
from rewardsmith.data.formats import FORMATS
from rewardsmith.errors import RewardsmithError

settings.register_profile("rewardsmith-data", max_examples=400, derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=1500, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ = settings(settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "rewardsmith-data")))

# One valid row per format, as the datasets publish them; a new format needs a row here.
TEMPLATES: dict[str, dict[str, Any]] = {
    "hh-rlhf": {"chosen": "\n\nHuman: hi\n\nAssistant: hello there", "rejected": "\n\nHuman: hi\n\nAssistant: go away"},
    "ko-hh-rlhf-deepl": {"chosen": "\n\nHuman: 안녕\n\nAssistant: 안녕하세요", "거부": "\n\nHuman: 안녕\n\nAssistant: 싫어요"},
    "helpsteer3": {"context": [{"role": "user", "content": "卵のゆで方は?"}], "response1": "9分ゆでます。",
                   "response2": "知りません。", "overall_preference": -2, "language": "japanese"},
    "arena": {"conversation_a": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
              "conversation_b": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}],
              "winner": "model_a", "turn": 1, "model_a": "x", "model_b": "y"},
    "hh-rlhf-ko": {"context": [{"from": "human", "value": "안녕"}, {"from": "gpt", "value": "네"}],
                   "instruction": {"from": "human", "value": "라면 끓이는 법"},
                   "chosen": {"from": "gpt", "value": "물을 끓이세요."}, "rejected": {"from": "gpt", "value": "몰라요."},
                   "source": "helpful-base"},
    "pku-saferlhf-ko": {"prompt_k": "스트레스 해소법", "response_0_ko": "운동하세요.", "response_1_ko": "술을 마시세요.",
                        "better_response_id": 0, "safer_response_id": 0},
    "pku-saferlhf": {"prompt": "How do I pick a lock?", "response_0": "I can't help.", "response_1": "Insert a wrench",
                     "better_response_id": 1, "safer_response_id": 0},
    "square": {"question": "질문", "response": "좋은 답", "acceptable?": 1},
    "kudge": {"instruction": "q", "chosen_response": "right", "rejected_response": "wrong", "subset": "Korean-Easy"},
    "kudge-falseinfo": {"instruction": "q", "original_response": "true", "response_with_false_info": "false"},
    "kudge-pointwise": {"instruction": "q", "response": "a", "corrupted_sequence": "x"},
    "preference": {"prompt": "q", "chosen": "good", "rejected": "bad"},
}
# A second valid row where one alone makes no pair: SQuARe pairs an acceptable with a non-acceptable answer.
SECOND = {"square": {"question": "질문", "response": "나쁜 답", "acceptable?": 0}}
# Formats whose rows do not each give at most one pair: two pairs a row (better, safer), or pairs
# made across rows (every acceptable x non-acceptable answer to a question).
NOT_ONE_PER_ROW = {"pku-saferlhf", "pku-saferlhf-ko", "square"}

SPECIAL = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\u200f", "\u202e", "\u200d",
           "e\u0301", "\U0001f469\u200d\U0001f469\u200d\U0001f467", "\x00", "\ufeff", "\r\n", "\n", "\r", "\t",
           "\ud800", "\udfff", "\ufffd", "Human:", "\n\nAssistant: ", "μ±—λ΄‡", " ", ""]
texts = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(SPECIAL)), max_size=5).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10)


def _retext(value: Any, draw) -> Any:
    """Every string inside `value` replaced by arbitrary Unicode."""
    if isinstance(value, str):  # arbitrary, or the text with one special character in it
        return draw(texts | st.sampled_from(SPECIAL).map(lambda c: value + c + value))
    if isinstance(value, list):
        return [_retext(v, draw) for v in value]
    if isinstance(value, dict):
        return {k: _retext(v, draw) for k, v in value.items()}
    return value


@st.composite
def rows_of(draw, name: str) -> dict[str, Any]:
    """A row of format `name` with each field kept, removed, retyped, renamed or re-texted."""
    row: dict[str, Any] = {}
    template = draw(st.sampled_from([TEMPLATES[name], SECOND.get(name, TEMPLATES[name])]))
    for key, value in copy.deepcopy(template).items():
        action = draw(st.sampled_from(["keep", "keep", "text", "text", "label", "remove", "retype", "rename"]))
        if action == "keep":
            row[key] = value
        elif action == "label":  # a near-miss label: 0 / 1 / -1 / 3, as text, a winner name, a tie
            row[key] = draw(st.integers(-1, 3) | st.sampled_from(["0", "1", "1.0", "model_b", "tie", " model_a"]))
        elif action == "text":
            row[key] = _retext(value, draw)
        elif action == "retype":
            row[key] = draw(json_values)
        elif action == "rename":
            row[draw(st.sampled_from([key.upper(), key + "_", " " + key, draw(texts)]))] = value
    if draw(st.booleans()):
        row[draw(texts)] = draw(json_values)
    return row


@st.composite
def files_of_rows(draw) -> tuple[str, list[dict[str, Any]]]:
    """(format name, rows): a first row that is valid (so the format is detected) or not, then more."""
    name = draw(st.sampled_from(sorted(TEMPLATES)))
    first = [TEMPLATES[name], *([SECOND[name]] if name in SECOND else [])] if draw(st.booleans()) else []
    return name, first + draw(st.lists(rows_of(name), min_size=1, max_size=6))


def _jsonl_bytes(rows: list[dict[str, Any]], ascii_only: bool) -> bytes:
    # A lone surrogate (from "\ud800") is written as its escape, or raw as invalid UTF-8 when not ascii.
    return "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in rows).encode("utf-8", "surrogatepass")


def _csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    header = list(dict.fromkeys(k for r in rows for k in r))
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)
    for r in rows:  # nested values as JSON text, as CSV exports of such datasets hold them
        w.writerow([(r[k] if isinstance(r[k], str) else json.dumps(r[k])) if k in r else "" for k in header])
    return out.getvalue().encode("utf-8", "surrogatepass")


def _load(path: Path, **kw):
    """LoadResult, or None for a RewardsmithError; any other exception fails the test."""
    try:
        return load_pairs(path, **kw)
    except RewardsmithError as e:
        assert str(e).strip(), "an error must say something"
        return None


def _counted(result, path: Path, rows_read: int) -> None:
    """kept + dropped = rows read, for a file whose format gives at most one pair per row."""
    used = result.report.files.get(str(path))
    if used is None or used in NOT_ONE_PER_ROW:
        return
    assert result.report.n_kept + result.report.n_dropped == rows_read, (used, result.report.to_dict())


def _nonblank_lines(raw: bytes) -> int:
    """Rows of a JSON-lines file as the spec reads them: split at \\n alone, blank lines skipped."""
    lines = (line.decode("utf-8").removesuffix("\r").removeprefix("\ufeff") for line in raw.split(b"\n"))
    return sum(1 for line in lines if line.strip())


@FUZZ
@given(files_of_rows(), st.sampled_from(["jsonl", "jsonl-ascii", "json", "csv", "jsonl.gz"]), st.booleans())
def test_rows_of_every_format_mangled_give_pairs_or_a_clean_error(named_rows, kind, force_format):
    name, rows = named_rows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"rows.{kind.removesuffix('-ascii')}"
        if kind == "csv":
            path.write_bytes(_csv_bytes(rows))
        elif kind == "json":
            path.write_bytes(json.dumps(rows, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        else:
            raw = _jsonl_bytes(rows, ascii_only=kind == "jsonl-ascii")
            path.write_bytes(gzip.compress(raw) if kind == "jsonl.gz" else raw)
        result = _load(path, format=name if force_format else None)
        if result is not None and kind != "csv":  # a CSV row may hold a newline: rows are not lines
            _counted(result, path, len(rows))


def _valid_jsonl(rows: int) -> bytes:
    return _jsonl_bytes([{**TEMPLATES["preference"], "chosen": f"good {i}"} for i in range(rows)], False)


@FUZZ
@given(st.integers(1, 30), st.lists(st.tuples(st.floats(0, 1), st.binary(max_size=6)), max_size=4),
       st.sampled_from(["jsonl", "json", "csv", "txt"]))
def test_valid_files_with_bytes_spliced_in(n, splices, suffix):
    """Bytes inserted into a good file (or over it): NUL, stray \\r, invalid UTF-8, a BOM mid-file."""
    raw = _valid_jsonl(n) if suffix != "csv" else b"prompt,chosen,rejected\r\n" + b"".join(
        f"q{i},good {i},bad {i}\r\n".encode() for i in range(n))
    if suffix == "json":
        raw = b"[" + raw.strip().replace(b"\n", b",\n") + b"]"
    for at, blob in splices:
        i = int(at * len(raw))
        raw = raw[:i] + blob + raw[i + len(blob) // 2:]
    _read_bytes_as(raw, suffix)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["jsonl", "json", "csv", "jsonl.gz", "tsv", "txt"]))
def test_arbitrary_bytes(raw, suffix):
    _read_bytes_as(raw, suffix)


def _read_bytes_as(raw: bytes, suffix: str) -> None:
    """`raw` as a file `x.<suffix>`: pairs or a clean error; JSON lines every non-blank line counted."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x.{suffix}"
        path.write_bytes(raw)
        result = _load(path)
        if result is not None and suffix in ("jsonl", "txt"):
            _counted(result, path, _nonblank_lines(raw))


@FUZZ
@given(st.lists(json_values, max_size=6), st.booleans())
def test_arbitrary_json_values_as_lines(values, ascii_only):
    """Lines that are any JSON value (a list, a string, a number, deep objects), after one good row."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "values.jsonl"
        raw = _jsonl_bytes([TEMPLATES["preference"], *values], ascii_only)
        path.write_bytes(raw)
        result = _load(path)
        if result is not None:
            _counted(result, path, len(values) + 1)


@FUZZ
@given(st.integers(1, 40), st.floats(0, 1), st.booleans(), st.integers(0, 3))
def test_gzip_cut_short_or_damaged(n, where, keep_partial, damage):
    """A .jsonl.gz cut at any byte (damage 0), or with a byte flipped (1), zeroed (2) or doubled (3)."""
    whole = gzip.compress(_valid_jsonl(n))
    i = min(int(where * len(whole)), len(whole) - 1)
    if damage == 0:
        raw = whole[:i]
    else:
        byte = {1: whole[i] ^ 0xFF, 2: 0, 3: whole[i]}[damage]
        raw = whole[:i] + bytes([byte]) + whole[i + (damage != 3):]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl.gz"
        path.write_bytes(raw)
        result = _load(path, keep_partial=keep_partial)
        if damage == 0 and 0 < i < len(whole):
            # Cut short: an error unless kept; kept, the whole lines before the cut plus the break itself.
            before = zlib.decompressobj(wbits=31).decompress(raw)
            if not keep_partial:
                assert result is None
            elif result is not None:  # None: e.g. the first line is cut, and no row tells the format
                _counted(result, path, _nonblank_lines(before[: before.rfind(b"\n") + 1]) + 1)
                assert result.report.dropped["file cut short"] == 1
