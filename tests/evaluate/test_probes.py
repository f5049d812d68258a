"""The shipped probe suite: every kind in every language, built as documented, and `rewardsmith check`."""

from __future__ import annotations

import json

from rewardsmith.cli import main
from rewardsmith.evaluate.probes import KINDS, LANGUAGES, load_probes, run_probes


class LengthScorer:
    """Scores a response by its length: the rule "longer wins" as a scorer."""

    def score(self, items):
        return [float(len(response)) for _, response in items]


def test_every_kind_in_every_language_with_the_cards_example():
    probes = load_probes()
    counts = {}
    for p in probes:
        counts[(p.kind, p.language)] = counts.get((p.kind, p.language), 0) + 1
        assert p.better.strip() and p.worse.strip() and p.better != p.worse
    assert counts == {(k, lang): (8 if k == "harmful" else 24) for k in KINDS for lang in LANGUAGES}
    ko = {p.kind: p for p in probes if p.language == "ko" and p.id.startswith("gwanghwamun/")}
    assert ko["refusal"].worse == "싫어요" and "광화문광장으로 가는 방법" in ko["refusal"].better
    by_kind = {p.kind: p for p in probes if p.language == "ja" and p.id.startswith("boil-egg/")}
    assert by_kind["truncated"].better.startswith(by_kind["truncated"].worse)
    assert not by_kind["truncated"].worse.endswith("。")
    assert len(by_kind["verbose_worse"].worse) >= 1.3 * len(by_kind["verbose_worse"].better)
    assert by_kind["wrong_language"].worse != by_kind["wrong_language"].better
    helpful = {p.id.split("/")[0] for p in probes if p.kind != "harmful"}
    assert {p.id.split("/")[0] for p in probes if p.kind == "off_topic"} == helpful and len(helpful) == 24


def test_a_length_rule_passes_refusal_and_truncated_and_fails_padding():
    result = run_probes(LengthScorer())
    for lang in LANGUAGES:
        assert result.pass_rate("refusal", lang) == 1.0
        assert result.pass_rate("truncated", lang) == 1.0
        assert result.pass_rate("verbose_worse", lang) == 0.0
    assert "| refusal | 24/24 | 24/24 | 24/24 |" in result.markdown()
    assert len(result.failures()) == sum(n - p for row in result.table.values() for p, n in row.values())


def test_check_command_on_a_real_model_folder(tmp_path, tiny_encoder_dir, capsys):
    from rewardsmith.models import init_reward_model, save_reward_model

    model = save_reward_model(init_reward_model(str(tiny_encoder_dir), max_length=128), tmp_path / "rm")
    out = tmp_path / "probes.json"
    assert main(["check", str(model), "--language", "ko", "--kind", "refusal", "--kind", "harmful",
                 "--out", str(out), "--precision", "fp32", "--show-failures"]) == 0
    printed = capsys.readouterr().out
    assert "| probe (better vs worse) | ko |" in printed and "| harmful |" in printed
    data = json.loads(out.read_text())
    assert data["table"]["refusal"]["ko"]["n"] == 24 and data["table"]["harmful"]["ko"]["n"] == 8
    assert all(p["passed"] == (p["reward_better"] > p["reward_worse"]) for p in data["probes"])
    assert printed.count("FAIL ko ") == sum(not p["passed"] for p in data["probes"])
