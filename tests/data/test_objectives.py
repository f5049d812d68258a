"""What a label means: every pair carries its objective and labeler, from its format, its row,
its judge information or the user, and reports group by them."""

from __future__ import annotations

import gzip
import json

import pytest

from rewardsmith.cli import main
from rewardsmith.data import load_pairs
from rewardsmith.data.objectives import group_name
from rewardsmith.errors import RewardsmithError

FIXTURES = __import__("pathlib").Path(__file__).parents[1] / "fixtures" / "data"


def _hh(path, n):
    rows = [{"chosen": f"\n\nHuman: q{i}?\n\nAssistant: good {i}", "rejected": f"\n\nHuman: q{i}?\n\nAssistant: bad"}
            for i in range(n)]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_hh_rlhf_subsets_are_helpfulness_or_harmlessness_by_human_labelers(tmp_path):
    _hh(tmp_path / "harmless-base.test.jsonl.gz", 2)
    _hh(tmp_path / "helpful-online.test.jsonl.gz", 3)
    r = load_pairs(tmp_path)
    assert {(p.subset, p.objective, p.labeler) for p in r.pairs} == {
        ("harmless-base", "harmlessness", "human"), ("helpful-online", "helpfulness", "human")}
    assert r.report.mixture == {("en", "harmlessness", "human"): 2, ("en", "helpfulness", "human"): 3}
    assert "en / helpfulness / human: 3" in r.report.render()


def test_known_sets_name_their_objective():
    got = {name: {(p.objective, p.labeler) for p in load_pairs(FIXTURES / name).pairs}
           for name in ("pku-saferlhf-ko", "helpsteer3", "llm-jp-arena", "hh-rlhf-ko")}
    assert got["pku-saferlhf-ko"] == {("helpfulness", "human"), ("harmlessness", "human")}  # better / safer
    assert got["helpsteer3"] == {("helpfulness", "human")}
    assert got["llm-jp-arena"] == {("general", "human")}
    assert got["hh-rlhf-ko"] <= {("helpfulness", "human"), ("harmlessness", "human"), (None, "human")}


def test_generic_rows_take_the_row_then_the_judge_then_the_user(tmp_path):
    f = tmp_path / "judged.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"prompt": "q1", "chosen": "a", "rejected": "b", "label_info": {"judge_type": "llm", "judge": "gpt-4o"}},
        {"prompt": "q2", "chosen": "a", "rejected": "b", "objective": "correctness", "labeler": "human"},
        {"prompt": "q3", "chosen": "a", "rejected": "b"},
    ]) + "\n", encoding="utf-8")
    plain = load_pairs(f).pairs
    assert [(p.objective, p.labeler) for p in plain] == [(None, "llm-judge"), ("correctness", "human"), (None, None)]
    told = load_pairs(f, objective="helpfulness", labeler="human").pairs
    assert [(p.objective, p.labeler) for p in told] == [
        ("helpfulness", "llm-judge"), ("correctness", "human"), ("helpfulness", "human")]
    assert group_name(told[0]) == "unknown/helpfulness/llm-judge"  # no language given
    with pytest.raises(RewardsmithError, match="'helpful' is not an objective; use one of helpfulness"):
        load_pairs(f, objective="helpful")


def test_a_row_with_an_unknown_objective_is_dropped_with_its_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n"
                 + json.dumps({"prompt": "q", "chosen": "a", "rejected": "b", "objective": "style"}) + "\n")
    r = load_pairs(f)
    assert len(r.pairs) == 1 and r.report.dropped == {"value out of range": 1}
    assert r.report.examples["value out of range"][0].startswith(f"{f}:2: objective is 'style'")


def test_data_inspect_reports_the_mixture_and_takes_objective(tmp_path, capsys):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b", "language": "ko"}) + "\n")
    assert main(["data", "inspect", str(f)]) == 0
    out = capsys.readouterr().out
    assert "ko / unknown objective / unknown labeler: 1" in out and "--objective" in out
    assert main(["data", "inspect", str(f), "--objective", "helpfulness", "--labeler", "llm-judge"]) == 0
    assert "ko / helpfulness / llm-judge: 1" in capsys.readouterr().out
