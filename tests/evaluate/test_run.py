"""The evaluate stage end to end on tiny models: table, HTML, cache, batch-size/order invariance, errors."""

import json
import random

import numpy as np
import pytest

from rewardsmith.cli import main
from rewardsmith.data.record import PreferencePair
from rewardsmith.evaluate import (
    Judgement,
    RewardModelEvaluator,
    ScoreCache,
    evaluate,
    load_dataset,
    parse_dataset,
    write_report,
)

TEXTS = {
    "en": [("How do I boil an egg?", "Put it in boiling water for nine minutes.", "Eggs are oval."),
           ("Name a fox.", "The quick brown fox.", "No."),
           ("What is a reward model?", "A model that scores responses for a prompt.", "A dog.")],
    "ja": [("栄養バランスの良い食事とは何ですか？", "主食、主菜、副菜をそろえることです。", "わかりません。"),
           ("日本語で挨拶してください。", "こんにちは、よろしくお願いします。", "Hello.")],
    "ko": [("광화문에 어떻게 가나요?", "지하철 5호선 광화문역에서 내리세요.", "모릅니다."),
           ("한국어로 감사 인사를 해 주세요.", "감사합니다.", "Thanks, I guess, whatever you want really.")],
}


def make_pairs() -> list[PreferencePair]:
    pairs = []
    for lang, rows in TEXTS.items():
        for i, (q, good, bad) in enumerate(rows):
            for subset in ("alpha", "beta"):
                pairs.append(PreferencePair(id=f"{lang}-{i}-{subset}", prompt=[{"role": "user", "content": q}],
                                            chosen=good if subset == "alpha" else good + " " + good, rejected=bad,
                                            language=lang, source="fixture", subset=subset))
    # Two answers of the same length: a tie for the length rules and for a judge that says so.
    pairs.append(PreferencePair(id="tie", prompt=[{"role": "user", "content": "Same?"}], chosen="Same.",
                                rejected="Sane.", language="en", source="fixture", subset="alpha"))
    # Identical answers on both sides, as real benchmarks hold: the loader drops and counts it.
    pairs.append(PreferencePair(id="dup", prompt=[{"role": "user", "content": "Dup?"}], chosen="Dup.",
                                rejected="Dup.", language="en", source="fixture", subset="alpha"))
    return pairs


def kept_pairs() -> list[PreferencePair]:
    return [p for p in make_pairs() if p.id != "dup"]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mini.jsonl"
    path.write_text("".join(p.to_json() + "\n" for p in make_pairs()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reward_models(tmp_path_factory, tiny_encoder_dir, tiny_decoder_dir):
    """The two tiny bases made into saved reward models through the models API."""
    from rewardsmith.models import init_reward_model, save_reward_model

    root = tmp_path_factory.mktemp("rms")
    out = {}
    for name, base in (("enc", tiny_encoder_dir), ("dec", tiny_decoder_dir)):
        out[name] = save_reward_model(init_reward_model(str(base), max_length=128), root / name)
    return out


def test_cli_writes_table_and_self_contained_html(tmp_path, pairs_file, reward_models, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(reward_models["enc"]), "--model", str(reward_models["dec"]),
               "--dataset", str(pairs_file), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
               "--bootstrap", "200", "--precision", "fp32"])
    assert rc == 0
    for name in ("table.md", "table.csv", "breakdown.csv", "results.json", "report.html",
                 "accuracy.png", "calibration.png", "length_bias.png", "rewards.png"):
        assert (out / name).stat().st_size > 0, name
    res = json.loads((out / "results.json").read_text())
    n = len(kept_pairs())
    assert res["datasets"][0]["dropped_by_reason"] == {"chosen == rejected": 1}
    # Two models: the length baselines count characters; both are rows of every table.
    longer, shorter = "longer wins (characters)", "shorter wins (characters)"
    assert set(res["table"]) == {"enc", "dec", longer, shorter}
    assert res["columns"] == ["mini", "mean"]
    pairs = make_pairs()
    assert res["table"][longer]["mini"]["wins"] == sum(len(p.chosen) > len(p.rejected) for p in pairs)
    assert res["table"][shorter]["mini"]["wins"] == sum(len(p.chosen) < len(p.rejected) for p in pairs)
    versus = {(v["model"], v["column"]): v for v in res["versus_baseline"]}
    assert set(versus) == {(m, c) for m in ("enc", "dec") for c in ("mini", "mean")}
    for (m, c), v in versus.items():
        best = max(res["table"][longer][c]["accuracy"], res["table"][shorter][c]["accuracy"])
        assert v["difference"] == pytest.approx(res["table"][m][c]["accuracy"] - best)
        assert v["beats"] == (v["ci_low"] > 0)
    for row in (res["table"]["enc"], res["table"]["dec"]):
        cell = row["mini"]
        assert cell["n"] == n
        assert cell["ci_low"] <= cell["accuracy"] <= cell["ci_high"]
        assert cell["accuracy"] == pytest.approx(cell["wins"] / n)
    groups = {(c["model"], c["group"]) for c in res["breakdown"]}
    assert ("enc", "language=ja") in groups and ("dec", "subset=beta") in groups
    assert {c["model"] for c in res["calibration"]} == {"enc", "dec"}
    assert {s["language"] for s in res["reward_stats"]} == {"en", "ja", "ko"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "src='http" not in html and "<script" not in html  # nothing fetched when opened offline
    table = (out / "table.md").read_text()
    assert "| enc |" in table and "| dec |" in table and f"| {longer} |" in table
    assert "not above the better of the length baselines" in table  # random tiny models: flagged
    assert "| enc |" in capsys.readouterr().out


def _evaluate(reward_models, ds, *, cache=None, token_budget=16384):
    evs = [RewardModelEvaluator(str(reward_models[k]), cache=cache, precision="fp32", token_budget=token_budget)
           for k in ("enc", "dec")]
    return evs, evaluate(evs, [ds], seed=0, n_boot=200)


def test_cache_hit_on_rerun_and_adding_a_model(tmp_path, pairs_file, reward_models):
    ds = load_dataset(parse_dataset(str(pairs_file)))
    unique = len({(json.dumps(c, ensure_ascii=False), r) for p in ds.pairs
                  for c, r in (p.chosen_conversation(), p.rejected_conversation())})
    with ScoreCache(tmp_path / "cache") as cache:
        enc = RewardModelEvaluator(str(reward_models["enc"]), cache=cache, precision="fp32")
        first = evaluate([enc], [ds], n_boot=200)
        assert enc.scored == unique and enc.loads == 1
        # Adding a model: the cached one is not rescored (not even loaded).
        enc2 = RewardModelEvaluator(str(reward_models["enc"]), cache=cache, precision="fp32")
        dec = RewardModelEvaluator(str(reward_models["dec"]), cache=cache, precision="fp32")
        second = evaluate([enc2, dec], [ds], n_boot=200)
        assert enc2.scored == 0 and enc2.loads == 0 and enc2.cached == unique
        assert dec.scored == unique
    assert second.table["enc"] == first.table["enc"]
    j1, j2 = first.judgements[("enc", "mini")], second.judgements[("enc", "mini")]
    assert np.array_equal(j1.r_chosen, j2.r_chosen)
    # A different precision is a different fingerprint: never mixed with fp32 scores.
    with ScoreCache(tmp_path / "cache") as cache:
        assert cache.fingerprint(reward_models["enc"], precision="fp32") != \
            cache.fingerprint(reward_models["enc"], precision="bf16")


def test_bf16_rows_are_scored_as_the_server_scores(reward_models):
    """bf16 loads the weights in bf16 (as `rewardsmith score` and `serve` do), not fp32 under
    autocast: the evaluate rewards equal the server path's rewards exactly."""
    import torch

    from rewardsmith.models import load_reward_model
    from rewardsmith.score import Scorer, scoring_dtype

    items = [p.chosen_conversation() for p in make_pairs()[:6]]
    for name in ("enc", "dec"):
        ev = RewardModelEvaluator(str(reward_models[name]), precision="bf16")
        got = ev.score(items)
        assert next(ev._rm.model.parameters()).dtype == torch.bfloat16
        served = Scorer(load_reward_model(reward_models[name], dtype=scoring_dtype("bf16")), precision="bf16")
        assert got == served.score(items), name


def test_retrained_weights_change_the_fingerprint(tmp_path, reward_models):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(reward_models["enc"], copy)
    with ScoreCache(tmp_path / "cache") as cache:
        a = cache.fingerprint(copy, precision="fp32")
        assert cache.fingerprint(copy, precision="fp32") == a  # memoised, same answer
        weights = next(copy.glob("*.safetensors"))
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1  # same size and shapes, different weights
        weights.write_bytes(bytes(data))
        assert cache.fingerprint(copy, precision="fp32") != a


def test_results_independent_of_batch_size_and_order(pairs_file, reward_models):
    ds = load_dataset(parse_dataset(str(pairs_file)))
    evs_small, small = _evaluate(reward_models, ds, token_budget=64)
    _, large = _evaluate(reward_models, ds, token_budget=1 << 20)
    shuffled = load_dataset(parse_dataset(str(pairs_file)))
    random.Random(3).shuffle(shuffled.pairs)
    _, reordered = _evaluate(reward_models, shuffled, token_budget=256)
    order = {p.id: i for i, p in enumerate(shuffled.pairs)}
    perm = [order[p.id] for p in ds.pairs]
    for model in ("enc", "dec"):
        a, b, c = (r.judgements[(model, "mini")] for r in (small, large, reordered))
        assert np.allclose(a.r_chosen, b.r_chosen, atol=1e-5) and np.allclose(a.r_rejected, b.r_rejected, atol=1e-5)
        assert np.allclose(a.r_chosen, c.r_chosen[perm], atol=1e-5)
        assert np.array_equal(a.outcomes, b.outcomes) and np.array_equal(a.outcomes, c.outcomes[perm])
        assert small.table[model]["mini"].accuracy == large.table[model]["mini"].accuracy \
            == reordered.table[model]["mini"].accuracy
        assert small.table[model]["mini"] == large.table[model]["mini"]  # same interval too
    assert evs_small[0].scored > 0


class ScriptedJudge:
    """A judge-shaped row: verdicts only, no rewards (prefers the longer answer; says tie on equal)."""

    name, kind = "longer-wins", "judge"

    def judge(self, pairs, *, desc=""):
        o = [1.0 if len(p.chosen) > len(p.rejected) else 0.5 if len(p.chosen) == len(p.rejected) else 0.0
             for p in pairs]
        return Judgement(np.array(o))

    def info(self):
        return {"name": self.name, "kind": self.kind}


def test_a_judge_row_sits_beside_reward_models(tmp_path, pairs_file, reward_models):
    ds = load_dataset(parse_dataset(str(pairs_file)))
    enc = RewardModelEvaluator(str(reward_models["enc"]), precision="fp32")
    result = evaluate([enc, ScriptedJudge()], [ds], n_boot=200)
    cell = result.table["longer-wins"]["mini"]
    longer = sum(len(p.chosen) > len(p.rejected) for p in ds.pairs)
    assert cell.wins == longer and cell.ties == 1
    lb = result.length_bias[("longer-wins", "mini")]
    assert lb.acc_chosen_longer == 1.0 and lb.acc_chosen_shorter == 0.0 and lb.pearson is None
    assert ("longer-wins", "mini") not in result.calibration
    written = write_report(result, tmp_path / "out")
    assert "longer-wins" in (tmp_path / "out" / "table.md").read_text()
    assert "calibration.png" in written  # from the reward model row


def test_limit_takes_a_seeded_sample(tmp_path, pairs_file):
    a = load_dataset(parse_dataset(str(pairs_file)), limit=5, seed=1)
    b = load_dataset(parse_dataset(str(pairs_file)), limit=5, seed=1)
    c = load_dataset(parse_dataset(str(pairs_file)), limit=5, seed=2)
    assert [p.id for p in a.pairs] == [p.id for p in b.pairs] and len(a.pairs) == 5
    assert a.sampled_from == len(kept_pairs()) and a.dropped_by_reason == {"chosen == rejected": 1}
    assert [p.id for p in a.pairs] != [p.id for p in c.pairs]
    # The sample depends on pair ids, not on the order the file lists them in.
    shuffled = make_pairs()
    random.Random(0).shuffle(shuffled)
    other = tmp_path / "shuffled.jsonl"
    other.write_text("".join(p.to_json() + "\n" for p in shuffled), encoding="utf-8")
    d = load_dataset(parse_dataset(str(other)), limit=5, seed=1)
    assert {p.id for p in d.pairs} == {p.id for p in a.pairs}


def test_unknown_dataset_and_model_names_list_close_matches(tmp_path, reward_models, pairs_file, capsys):
    assert main(["evaluate", "--model", str(reward_models["enc"]), "--dataset", "helpstear3-ja"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "helpsteer3-ja" in err
    typo = str(reward_models["enc"]) + "x"
    assert main(["evaluate", "--model", typo, "--dataset", str(pairs_file)]) == 2
    err = capsys.readouterr().err
    assert "did you mean" in err and str(reward_models["enc"]) in err


def test_list_shows_the_card_presets(capsys):
    assert main(["evaluate", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("helpsteer3-ja", "llm-jp-arena", "hh-rlhf-ko-helpful", "pku-saferlhf-ko-better",
                 "ko-ultrafeedback-binarized", "hh-rlhf", "square", "kudge"):
        assert name in out


def test_cli_judge_row_through_the_judge_backends(tmp_path, pairs_file, reward_models):
    """A scripted LLM judge (the real backend table, scripted replies) beside a reward model."""
    script = tmp_path / "judge.json"
    script.write_text(json.dumps({
        "rules": [{"contains": "Answer A: Put it in boiling", "reply": "[[A]]"},
                  {"contains": "Answer B: Put it in boiling", "reply": "[[B]]"},
                  {"contains": "Same?", "reply": "I cannot decide."}],  # unparseable: a counted failure
        "default": "[[C]]"}), encoding="utf-8")
    argv = ["evaluate", "--model", str(reward_models["enc"]), "--judge", f"scripted:{script}",
            "--dataset", str(pairs_file), "--cache-dir", str(tmp_path / "cache"), "--bootstrap", "200",
            "--precision", "fp32", "--no-plots"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    judge = next(m for m in res["models"] if m["kind"] == "judge")
    cell = res["table"][judge["name"]]["mini"]
    n = len(kept_pairs())
    # Two egg pairs judged right in both orders; the "Same?" pair fails (not a win, not a tie);
    # every other pair is an explicit tie.
    assert (cell["n"], cell["wins"], cell["ties"]) == (n, 2, n - 3)
    # Both orders of every pair (the identical-answers pair, one request in both orders, was dropped).
    assert judge["failures"] == 1 and judge["order_flips"] == 0 and judge["requests"]["sent"] == 2 * n
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0  # rerun: every judge reply from the cache
    again = json.loads((tmp_path / "b" / "results.json").read_text())
    assert next(m for m in again["models"] if m["kind"] == "judge")["requests"]["sent"] == 0
    assert again["table"] == res["table"]
