"""`rewardsmith best-of-n-eval` with scripted generator and judges (the real backend table)."""

from __future__ import annotations

import itertools
import json

import pytest

from rewardsmith.cli import main
from rewardsmith.judge.prompts import PAIRWISE
from rewardsmith.models import load_reward_model
from rewardsmith.score import Scorer

QUESTIONS = ["How do I boil an egg?", "What is a reward model?", "Why is the sky blue?", "Name a prime number.",
             "What is rice?", "Where is Seoul?"]
N = 4
ANSWERS = [f"answer number {k} to the question" for k in range(N)]


def _run(encoder_rm, tmp_path, judge_rules, judge_default):
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"id": f"q{i}", "prompt": q, "language": "en"} for i, q in enumerate(QUESTIONS)]
    rows.append({"id": "broken", "prompt": "the generator is down"})
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    generator = tmp_path / "generator.json"
    generator.write_text(json.dumps({"rules": [{"contains": "is down", "fail": "HTTP 503: down"}],
                                     "default": "answer number {seed} to the question"}))
    judge = tmp_path / "judge.json"
    judge.write_text(json.dumps({"rules": judge_rules, "default": judge_default, "model_id": "judge"}))
    out = tmp_path / "out"
    code = main(["best-of-n-eval", str(encoder_rm), str(prompts), "--out", str(out), "--n", str(N),
                 "--generator", f"scripted:{generator}", "--judge", f"scripted:{judge}", "--precision", "fp32"])
    assert code == 0
    return json.loads((out / "report.json").read_text()), [json.loads(x) for x in (out / "details.jsonl").open()]


def test_a_judge_that_agrees_with_the_reward_model(encoder_rm, tmp_path, capsys):
    scorer = Scorer(load_reward_model(encoder_rm), precision="fp32")
    rules = []
    for q in QUESTIONS:
        rewards = scorer.score([([{"role": "user", "content": q}], a) for a in ANSWERS])
        best = ANSWERS[max(range(N), key=rewards.__getitem__)]
        for a, b in itertools.permutations(ANSWERS, 2):  # it prefers the reward model's favourite in either place
            shown = PAIRWISE["en"].format(question=q, answer_a=a, answer_b=b)
            rules.append({"contains": shown, "reply": "[[A]]" if a == best else "[[B]]" if b == best else "[[C]]"})
    report, details = _run(encoder_rm, tmp_path, rules, None)
    assert report["prompts"] == 7 and report["generation_failures"] == 1
    assert report["same_answer"] + report["wins"] == 6 and report["losses"] == report["ties"] == 0
    assert report["win_rate"] == pytest.approx((report["wins"] + 0.5 * report["same_answer"]) / 6)
    assert report["position_consistency"] == 1.0 and not report["judge_too_weak"]
    assert report["ci_low"] <= report["win_rate"] <= report["ci_high"]
    assert report["mean_reward_best"] > report["mean_reward_random"]
    for d in details:
        assert d["rewards"] == pytest.approx(scorer.score([(d["prompt"], a) for a in d["responses"]]), abs=1e-5)
    assert "too weak" not in capsys.readouterr().out


def test_a_position_biased_judge_is_reported_too_weak(encoder_rm, tmp_path, capsys):
    report, _ = _run(encoder_rm, tmp_path, [], "[[A]] the first one")
    assert report["position_consistency"] == 0.0 and report["judge_too_weak"]
    assert report["wins"] == report["losses"] == 0 and report["win_rate"] == 0.5  # every flip is a tie
    assert "judge is too weak to decide" in report["conclusion"] and "pipeline check" in capsys.readouterr().out
