"""The generic reader (TRL conventions, our own JSONL), file kinds, sources, and whole-file errors."""

from __future__ import annotations

import csv
import gzip
import json

import pytest

from rewardsmith.data import PreferencePair, load_pairs
from rewardsmith.data.save import save_pairs
from rewardsmith.errors import RewardsmithError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def u(t):
    return {"role": "user", "content": t}


def a(t):
    return {"role": "assistant", "content": t}


def test_explicit_prompt_plain_text(tmp_path):
    f = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "卵のゆで方は?", "chosen": "9分ゆでます。", "rejected": "知りません。"}])
    (p,) = load_pairs(f).pairs
    assert p.prompt == [u("卵のゆで方は?")]
    assert (p.chosen, p.rejected) == ("9分ゆでます。", "知りません。")
    assert p.source == tmp_path.name and p.subset == "p" and p.id == f"{tmp_path.name}/p/0"


def test_explicit_prompt_conversational(tmp_path):
    row = {"prompt": [u("hi"), a("hello"), u("2+2?")], "chosen": [a("4")], "rejected": [a("5")], "score_chosen": 9}
    (p,) = load_pairs(write_jsonl(tmp_path / "c.jsonl", [row])).pairs
    assert p.prompt == row["prompt"] and (p.chosen, p.rejected) == ("4", "5")
    assert p.label_info == {"score_chosen": 9}  # unknown columns are kept as label information


def test_implicit_prompt_conversational_shared_prefix(tmp_path):
    row = {"chosen": [u("q"), a("good")], "rejected": [u("q"), a("bad")]}
    (p,) = load_pairs(write_jsonl(tmp_path / "i.jsonl", [row])).pairs
    assert p.prompt == [u("q")] and (p.chosen, p.rejected) == ("good", "bad") and p.rejected_prompt is None


def test_implicit_prompt_conversations_that_differ_earlier_keep_both(tmp_path):
    row = {"chosen": [u("q"), a("x"), u("more"), a("good")], "rejected": [u("q"), a("y"), u("more"), a("bad")]}
    r = load_pairs(write_jsonl(tmp_path / "d.jsonl", [row]))
    (p,) = r.pairs
    assert p.prompt == [u("q"), a("x"), u("more")]
    assert p.rejected_prompt == [u("q"), a("y"), u("more")]
    assert p.rejected_conversation() == (p.rejected_prompt, "bad")
    assert sum(r.report.flagged.values()) == 1


def test_implicit_prompt_plain_text_uses_trl_prefix_rule(tmp_path):
    row = {"chosen": "The sky is blue.", "rejected": "The sky is green."}
    (p,) = load_pairs(write_jsonl(tmp_path / "t.jsonl", [row])).pairs
    assert p.prompt == [u("The sky is")] and (p.chosen, p.rejected) == (" blue.", " green.")


def test_column_mapping(tmp_path):
    f = write_jsonl(tmp_path / "m.jsonl", [{"question": "q", "good": "g", "bad": "b"}])
    with pytest.raises(RewardsmithError, match=r"columns \['bad', 'good', 'question'\].*columns="):
        load_pairs(f)
    (p,) = load_pairs(f, columns={"prompt": "question", "chosen": "good", "rejected": "bad"}).pairs
    assert (p.prompt, p.chosen, p.rejected) == ([u("q")], "g", "b")
    with pytest.raises(RewardsmithError, match="does not have"):
        load_pairs(f, columns={"prompt": "query"})


def test_missing_column_names_close_match(tmp_path):
    f = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "q", "chosen": "g", "rejectd": "b"}])
    with pytest.raises(RewardsmithError) as e:
        load_pairs(f, format="preference")
    msg = str(e.value)
    assert "x.jsonl:1" in msg and "['rejected']" in msg and "'rejected': 'rejectd'" in msg


def test_bad_rows_are_dropped_with_file_line_and_reason(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text("\n".join([
        json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}),
        "{not json",
        json.dumps({"prompt": "q", "chosen": 3, "rejected": "b"}),
        json.dumps({"prompt": [a("assistant last")], "chosen": "a", "rejected": "b"}),
        json.dumps([1, 2]),
        json.dumps({"prompt": "q", "chosen": "a"}),
    ]) + "\n", encoding="utf-8")
    r = load_pairs(f)
    assert len(r.pairs) == 1
    assert r.report.dropped == {"invalid JSON": 1, "wrong type": 1, "prompt does not end with a user turn": 1,
                                "not a JSON object": 1, "missing field": 1}
    assert r.report.examples["invalid JSON"][0].startswith(f"{f}:2")
    assert r.report.examples["wrong type"][0].startswith(f"{f}:3")


def test_not_utf8_names_the_encoding(tmp_path):
    f = tmp_path / "cp949.jsonl"
    text = "".join(json.dumps({"prompt": f"한국어 질문 {i}입니다", "chosen": "좋은 답변입니다", "rejected": "나쁜 답변"},
                              ensure_ascii=False) + "\n" for i in range(30))
    f.write_bytes(text.encode("cp949"))
    with pytest.raises(RewardsmithError, match=r"cp949.jsonl:1: not UTF-8.*(cp949|euc_kr|johab).*iconv"):
        load_pairs(f)


def test_csv_json_parquet_and_gzip_read_the_same(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(3)]
    with open(tmp_path / "p.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["prompt", "chosen", "rejected"])
        w.writeheader()
        w.writerows(rows)
    (tmp_path / "p.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "p.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    for name in ("p.csv", "p.json", "p.jsonl.gz", "p.parquet"):
        pairs = load_pairs(tmp_path / name).pairs
        assert [(p.prompt[0]["content"], p.chosen, p.rejected) for p in pairs] == [
            (r["prompt"], r["chosen"], r["rejected"]) for r in rows], name
    # a folder reads every data file in it; a glob selects
    assert len(load_pairs(tmp_path).pairs) == 12
    assert len(load_pairs(str(tmp_path / "p.js*")).pairs) == 6  # p.json, p.jsonl.gz


def test_hugging_face_saved_dataset_folder(tmp_path):
    import datasets

    rows = {"prompt": ["q1", "q2"], "chosen": ["g1", "g2"], "rejected": ["b1", "b2"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                          "test": datasets.Dataset.from_dict(rows)}).save_to_disk(tmp_path / "ds")
    r = load_pairs(tmp_path / "ds")
    assert len(r.pairs) == 4 and {p.subset for p in r.pairs} == {"train", "test"}
    assert [p.subset for p in load_pairs(tmp_path / "ds", split="test").pairs] == ["test", "test"]
    with pytest.raises(RewardsmithError, match="no split 'validation'"):
        load_pairs(tmp_path / "ds", split="validation")


def test_own_jsonl_and_parquet_round_trip(tmp_path):
    pairs = [
        PreferencePair(id="x/1", prompt=[u("q")], chosen="c", rejected="r", margin=2.0, language="ja",
                       source="judge", subset="s", label_info={"judge": "gpt-4o", "votes": [1, 0]}),
        PreferencePair(id="x/2", prompt=[u("q"), a("a"), u("q2")], chosen="c2", rejected="r2",
                       rejected_prompt=[u("q"), a("b"), u("q2")], source="own", label_info={"n": 3},
                       objective="harmlessness", labeler="human"),
    ]
    for name in ("out.jsonl", "out.jsonl.gz", "out.parquet"):
        back = load_pairs(save_pairs(pairs, tmp_path / name)).pairs
        assert back == pairs, name


def test_unknown_format_and_missing_source(tmp_path):
    with pytest.raises(RewardsmithError, match="did you mean hh-rlhf"):
        load_pairs(tmp_path, format="hh-rlfh")
    with pytest.raises(RewardsmithError, match="no such file"):
        load_pairs(str(tmp_path / "nope" / "x.jsonl"))
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(RewardsmithError, match="no readable data file"):
        load_pairs(tmp_path)


def test_language_argument_fills_and_filters(tmp_path):
    f = write_jsonl(tmp_path / "l.jsonl", [
        {"prompt": "q", "chosen": "a", "rejected": "b"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "language": "english"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "language": "Korean"},
    ])
    r = load_pairs(f, language="korean")
    assert [p.language for p in r.pairs] == ["ko", "ko"]
    assert r.report.dropped == {"language != ko": 1}


def test_file_whose_every_row_has_the_wrong_type_is_an_error(tmp_path):
    f = write_jsonl(tmp_path / "w.jsonl", [{"prompt": "q", "chosen": i, "rejected": i + 1} for i in range(3)])
    with pytest.raises(RewardsmithError, match=r"w.jsonl: every row failed with 'wrong type'.*--format"):
        load_pairs(f)


def test_broken_first_line_does_not_decide_the_format(tmp_path):
    f = tmp_path / "b.jsonl"
    f.write_text('{"prompt": "q", "chosen": \n' + json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    r = load_pairs(f)
    assert len(r.pairs) == 1 and r.report.dropped == {"invalid JSON": 1}
    assert r.report.examples["invalid JSON"][0].startswith(f"{f}:1")


@pytest.mark.parametrize("content, kept", [
    (b"", b""), (b'{"a": 1}\n', b'{"a": 1}\n'), (b'{"a": 1}\n{"b": 2', b'{"a": 1}\n'), (b'{"b": 2', b""),
    (b"x\n" * 10 + b"y" * 11, b"x\n" * 10),
])
def test_cut_torn_last_line_reads_back_from_the_end(tmp_path, content, kept):
    from rewardsmith.data.files import cut_torn_last_line

    path = tmp_path / "log.jsonl"
    path.write_bytes(content)
    cut_torn_last_line(path, block=3)  # blocks smaller than the torn line: the backward scan is exercised
    assert path.read_bytes() == kept
