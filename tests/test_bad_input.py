"""The four defects of issue 27, through the real entry point: `rewardsmith data inspect`, and `score`
for the gzip stream cut short. Each once gave a traceback or kept a useless pair silently."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from rewardsmith.cli import main

PAIRS = [{"prompt": f"question {i}", "chosen": f"a good answer {i}", "rejected": f"a bad one {i}"} for i in range(400)]


def _cut_gzip(path, rows):
    """`rows` gzipped and cut in the middle, as an interrupted download leaves it; returns the number
    of whole lines before the cut, counted by decompressing what is left."""
    whole = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    path.write_bytes(whole[: len(whole) // 2])
    return zlib.decompressobj(wbits=31).decompress(whole[: len(whole) // 2]).count(b"\n")


def _inspect_json(capsys, *args):
    assert main(["data", "inspect", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_gzip_cut_short_is_one_error_line_or_kept_when_asked(tmp_path, capsys):
    f = tmp_path / "pairs.jsonl.gz"
    whole_lines = _cut_gzip(f, PAIRS)
    size = f.stat().st_size
    assert main(["data", "inspect", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {f}:{whole_lines + 1}: the gzip stream breaks at byte {size} of {size} (cut short")
    assert "--keep-partial" in err and "Traceback" not in err and "EOFError" not in err

    d = _inspect_json(capsys, f, "--keep-partial")
    assert d["kept"] == whole_lines and d["dropped_by_reason"] == {"file cut short": 1}
    assert d["drop_examples"]["file cut short"][0].startswith(f"{f}:{whole_lines + 1}: the gzip stream breaks")


def test_empty_and_whitespace_responses_are_dropped_with_file_and_line(tmp_path, capsys):
    f = tmp_path / "empty.jsonl"
    rows = [PAIRS[0], {"prompt": "q", "chosen": "", "rejected": "   "}, {"prompt": "q", "chosen": "yes", "rejected": "\n\t"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    d = _inspect_json(capsys, f)
    assert d["kept"] == 1 and d["dropped_by_reason"] == {"empty response": 2}
    assert d["drop_examples"]["empty response"] == [f"{f}:2: chosen is empty", f"{f}:3: rejected is only whitespace"]
    assert main(["data", "inspect", str(f)]) == 0
    assert "empty response: 2" in capsys.readouterr().out  # the text report shows them too


def test_chosen_equal_to_rejected_is_dropped_with_file_and_line(tmp_path, capsys):
    f = tmp_path / "same.jsonl"
    rows = [{"prompt": "q", "chosen": "You're welcome.", "rejected": " You're welcome.\n"}, PAIRS[1]]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    d = _inspect_json(capsys, f)
    assert d["kept"] == 1 and d["dropped_by_reason"] == {"chosen == rejected": 1}
    assert d["drop_examples"]["chosen == rejected"][0].startswith(f"{f}:1: ")


@pytest.mark.parametrize("raw", [False, True])
def test_line_separators_inside_strings_do_not_split_a_record(tmp_path, capsys, raw):
    """U+2028, U+2029, U+0085 and the controls str.splitlines() breaks at, raw in the file (as
    ensure_ascii=False writes them, and as the Korean judged set holds them) or escaped."""
    # The controls below U+0020 (\x0b, \x0c, \x1c-\x1e) JSON allows only escaped: json.dumps writes "\u001c".
    seps = "\u2028\u2029\u0085\x1c\x1d\x1e"
    # One separator between words, as in model outputs (two adjacent ones read as mojibake, data.mojibake).
    rows = [{"prompt": f"질문{s}{i}", "chosen": f"첫째 줄{s}둘째 줄 {i}", "rejected": f"x\x0b{s}y\x0cz"}
            for i, s in enumerate(seps * 3)]
    f = tmp_path / "seps.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=not raw) + "\n" for r in rows), encoding="utf-8")
    d = _inspect_json(capsys, f)
    assert d["kept"] == len(rows) == 18 and d["dropped"] == 0


@pytest.fixture(scope="module")
def model(tiny_encoder_dir, tmp_path_factory):
    from rewardsmith.models import init_reward_model, save_reward_model

    return save_reward_model(init_reward_model(tiny_encoder_dir), tmp_path_factory.mktemp("rm") / "rm")


def test_score_refuses_a_cut_gzip_before_writing_and_keeps_its_head_when_asked(model, tmp_path, capsys):
    f = tmp_path / "pairs.jsonl.gz"
    whole_lines = _cut_gzip(f, PAIRS)
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(model), str(f), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: {f}:{whole_lines + 1}: the gzip stream breaks at byte" in err and "EOFError" not in err
    assert not out.exists() or out.read_text() == ""  # nothing scored from a file it refuses

    assert main(["score", str(model), str(f), "-o", str(out), "--keep-partial"]) == 0
    assert f"warning: {f}:{whole_lines + 1}: the gzip stream breaks" in capsys.readouterr().err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in lines] == list(range(1, whole_lines + 1))


def test_lone_surrogate_found_by_the_fuzz_tests_is_a_counted_drop(tmp_path, capsys):
    """A "\\ud800" escape (half a UTF-16 pair) once crashed the SQuARe reader's id hash and `data convert`."""
    f = tmp_path / "square.jsonl"
    rows = [{"question": "질문", "response": "좋은 답\ud800", "acceptable?": 1},
            {"question": "질문", "response": "나쁜 답", "acceptable?": 0}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    d = _inspect_json(capsys, f, "--format", "square")
    assert d["kept"] == 0 and d["dropped_by_reason"] == {"lone surrogate": 1}
    g = tmp_path / "extra.jsonl"
    g.write_text(json.dumps({**PAIRS[0], "note": "x\udfff"}) + "\n", encoding="utf-8")  # kept in label_info
    assert main(["data", "convert", str(g), str(tmp_path / "out.jsonl")]) == 0
    assert _inspect_json(capsys, tmp_path / "out.jsonl")["kept"] == 1
