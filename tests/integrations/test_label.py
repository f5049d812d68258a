"""`rewardsmith label`: groups, drops by reason, the same scores as `rewardsmith score`, resuming
after a SIGKILL without scoring anything twice, sampling with a generator, the length warning."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rewardsmith.cli import main
from rewardsmith.models import load_reward_model
from rewardsmith.score import Scorer

HERE = Path(__file__).parent
PROMPTS = ["How do I boil an egg?", "栄養バランスの良い食事とは何ですか？", "광화문에 어떻게 가나요?",
           "What is a reward model?"]
ANSWERS = ["Nine minutes in boiling water.", "主食、主菜、副菜をそろえることです。", "지하철 5호선 광화문역에서 내리세요.",
           "I don't know.", "The quick brown fox jumps over the lazy dog.", "ありがとうございます。"]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def label(*args) -> int:
    return main(["label", *map(str, args), "--precision", "fp32"])


def test_groups_outputs_and_drops(encoder_rm, tmp_path, capsys):
    rows = [
        {"id": "a", "prompt": PROMPTS[0], "responses": ANSWERS[:4]},
        {"prompt": [{"role": "user", "content": PROMPTS[1]}], "response": ANSWERS[1]},  # grouped rows...
        {"prompt": [{"role": "user", "content": PROMPTS[1]}], "completion": ANSWERS[5]},
        {"prompt": [{"role": "user", "content": PROMPTS[1]}], "response": ANSWERS[1]},  # a repeat
        {"prompt": [{"role": "user", "content": PROMPTS[1]}], "response": "  "},  # empty
        {"prompt": PROMPTS[2], "responses": [ANSWERS[2]]},  # only one
        {"prompt": [{"role": "user", "content": PROMPTS[1]}], "response": ANSWERS[3]},  # group ended before
        {"responses": ANSWERS[:2]},  # no prompt
        {"prompt": PROMPTS[3]},  # no responses and no generator
        {"messages": [{"role": "user", "content": PROMPTS[3]}], "responses": ANSWERS[2:6]},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    assert label(encoder_rm, source, "--out", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["prompts"] == {"read": 4, "labelled": 3}
    assert report["dropped"]["by_reason"] == {
        "prompt seen again after its group ended": 1, "missing field": 1, "no responses": 1,
        "response repeated for the same prompt": 1, "empty response": 1,
        "prompt with fewer than 2 distinct responses": 1}
    assert report["dropped"]["examples"]["missing field"] == [f"{source}:8: no 'prompt' (or 'messages') field for "
                                                              "the 'responses' to answer"]

    scorer = Scorer(load_reward_model(encoder_rm), precision="fp32")
    groups = [([{"role": "user", "content": PROMPTS[0]}], ANSWERS[:4]),
              ([{"role": "user", "content": PROMPTS[1]}], [ANSWERS[1], ANSWERS[5]]),
              ([{"role": "user", "content": PROMPTS[3]}], ANSWERS[2:6])]
    sft, dpo = read_jsonl(tmp_path / "out" / "sft.jsonl"), read_jsonl(tmp_path / "out" / "dpo.jsonl")
    assert [row.get("id") for row in sft] == ["a", None, None]
    assert report["responses"] == {"scored": 10, "scored_this_run": 10, "from_earlier_runs": 0}
    for (prompt, answers), s, d in zip(groups, sft, dpo):
        rewards = scorer.score([(prompt, a) for a in answers])
        best, worst = max(range(len(answers)), key=rewards.__getitem__), min(range(len(answers)), key=rewards.__getitem__)
        assert s == {**({"id": "a"} if s.get("id") else {}), "prompt": prompt,
                     "completion": [{"role": "assistant", "content": answers[best]}], "reward": pytest.approx(rewards[best], abs=1e-5)}
        assert d["chosen"][0]["content"] == answers[best] and d["rejected"][0]["content"] == answers[worst]
        assert d["chosen_reward"] - d["rejected_reward"] == pytest.approx(rewards[best] - rewards[worst], abs=1e-5)
    assert report["dpo"]["pairs"] == 3 and report["rewards"]["all"]["n"] == 10
    assert "labelled" in capsys.readouterr().out

    # Every pair above a margin: re-derived from scores.jsonl, nothing scored again.
    assert label(encoder_rm, source, "--out", tmp_path / "out", "--pairs", "all", "--min-margin", "0.05") == 0
    again = json.loads((tmp_path / "out" / "report.json").read_text())
    assert again["responses"]["scored_this_run"] == 0
    pairs = read_jsonl(tmp_path / "out" / "dpo.jsonl")
    assert len(pairs) == again["dpo"]["pairs"] == 6 + 1 + 6 - again["dpo"]["pairs_below_min_margin"]
    assert all(p["chosen_reward"] - p["rejected_reward"] >= 0.05 for p in pairs)


def test_same_scores_as_rewardsmith_score(decoder_rm, tmp_path):
    rows = [{"prompt": p, "response": a} for p in PROMPTS for a in ANSWERS]  # grouped rows
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    assert label(decoder_rm, source, "--out", tmp_path / "out") == 0
    assert main(["score", str(decoder_rm), str(source), "-o", str(tmp_path / "scores.jsonl"), "--precision", "fp32"]) == 0
    scored = [r["score"] for r in read_jsonl(tmp_path / "scores.jsonl")]
    labelled = [x for line in read_jsonl(tmp_path / "out" / "scores.jsonl") for x in line["rewards"]]
    assert labelled == pytest.approx(scored, abs=1e-6)


def test_resumes_after_sigkill_without_scoring_twice(encoder_rm, tmp_path, monkeypatch):
    import rewardsmith.label

    rows = [{"id": i, "prompt": f"{PROMPTS[i % 4]} ({i})", "responses": ANSWERS[i % 3: i % 3 + 3]} for i in range(12)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out, counts = tmp_path / "out", tmp_path / "counts.txt"
    # Chunks of >= 8 responses: 3 prompts (9 responses) each, 4 scoring calls in all; a real
    # SIGKILL at the start of the 3rd, in a process of its own.
    killed = subprocess.run([sys.executable, str(HERE / "label_killed.py"), str(counts), "3", "8", "label",
                             str(encoder_rm), str(source), "--out", str(out), "--precision", "fp32"],
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(read_jsonl(out / "scores.jsonl")) == 6 and counts.read_text().split() == ["9", "9"]
    with (out / "scores.jsonl").open("a") as f:
        f.write('{"index": 6, "where": "cut short by the ki')  # a line torn by a kill mid-write

    scored = []  # the resumed run, in this process, with its scoring calls counted the same way
    monkeypatch.setattr(rewardsmith.label, "CHUNK", 8)
    score = Scorer.score
    monkeypatch.setattr(Scorer, "score", lambda self, items: scored.append(len(items)) or score(self, items))
    assert label(encoder_rm, source, "--out", out) == 0
    assert sum(map(int, counts.read_text().split())) + sum(scored) == 36  # every response scored exactly once
    report = json.loads((out / "report.json").read_text())
    assert report["responses"] == {"scored": 36, "scored_this_run": 18, "from_earlier_runs": 18}
    monkeypatch.undo()

    assert label(encoder_rm, source, "--out", tmp_path / "straight") == 0  # the same, uninterrupted
    log = read_jsonl(out / "scores.jsonl")
    assert [line["index"] for line in log] == list(range(12))
    assert [line["rewards"] for line in log] == [
        pytest.approx(line["rewards"], abs=1e-6) for line in read_jsonl(tmp_path / "straight" / "scores.jsonl")]
    # Other chunks, other batch-mates: the same rewards to float32 rounding, the same choices.
    for a, b in zip(read_jsonl(out / "dpo.jsonl"), read_jsonl(tmp_path / "straight" / "dpo.jsonl"), strict=True):
        assert (a["chosen"], a["rejected"]) == (b["chosen"], b["rejected"])


def test_refuses_to_mix_runs(encoder_rm, decoder_rm, tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": PROMPTS[0], "responses": ANSWERS[:3]}])
    assert label(encoder_rm, source, "--out", tmp_path / "out") == 0
    assert label(decoder_rm, source, "--out", tmp_path / "out") == 2
    assert "holds the labels of another run (model:" in capsys.readouterr().err
    write_jsonl(source, [{"prompt": PROMPTS[1], "responses": ANSWERS[:3]}])
    assert label(encoder_rm, source, "--out", tmp_path / "out") == 2
    assert "the input changed since that run" in capsys.readouterr().err


def test_generator_samples_n_responses(encoder_rm, tmp_path):
    script = tmp_path / "generator.json"
    script.write_text(json.dumps({"rules": [{"contains": "down", "fail": "HTTP 503: server down"}],
                                  "default": "answer number {seed} to the question", "log": "calls.jsonl"}))
    source = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": PROMPTS[0]}, {"prompt": "the server is down"},
                                                      {"prompt": [{"role": "user", "content": PROMPTS[1]}]}])
    args = [encoder_rm, source, "--out", tmp_path / "out", "--generator", f"scripted:{script}", "--n", "3"]
    assert label(*args) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["prompts"] == {"read": 3, "labelled": 2} and report["responses"]["scored"] == 6
    assert report["dropped"]["by_reason"] == {"generation failed: HTTP 503": 3,
                                              "prompt left for a re-run: generation failed": 1}
    sft = read_jsonl(tmp_path / "out" / "sft.jsonl")
    assert {row["completion"][0]["content"] for row in sft} <= {f"answer number {k} to the question" for k in range(3)}
    calls = len(read_jsonl(tmp_path / "calls.jsonl"))
    assert calls == 9
    assert label(*args) == 0  # a re-run asks again only for the failed prompt's samples
    assert len(read_jsonl(tmp_path / "calls.jsonl")) == calls + 3


def test_length_warning(encoder_rm, tmp_path):
    """Reward follows length in every pair here (a hand-made log stands in for a length-loving model)."""
    rows, log = [], []
    for i in range(12):
        prompt = [{"role": "user", "content": f"question {i}"}]
        answers = ["short", "a longer answer", "the longest answer of the three"]
        rows.append({"prompt": prompt, "responses": answers})
        log.append({"index": i, "where": f"in.jsonl:{i + 1}", "id": None, "prompt": prompt, "responses": answers,
                    "rewards": [0.1 * len(a) for a in answers], "dropped": []})
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    assert label(encoder_rm, source, "--out", out) == 0  # a real run writes its run file...
    write_jsonl(out / "scores.jsonl", log)  # ...then its log is swapped for the length-loving one
    assert label(encoder_rm, source, "--out", out) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["length"]["chosen_longer_rate"] == 1.0 and report["length"]["best_is_longest_rate"] == 1.0
    assert report["responses"]["scored_this_run"] == 0
    assert len(report["warnings"]) == 1 and "longer one in 100%" in report["warnings"][0]
