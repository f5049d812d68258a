"""Recipe tier: the CPU recipe trains multilingual-e5-small on real pairs and beats chance on held-out prompts.

Runs `rewardsmith train --config configs/e5-small-cpu.yaml` through the CLI as shipped (one epoch
of 16-pair steps, ~1.0M training tokens: minutes of every core, from ~8 on an AVX-512 Xeon to
~26 on a 2-core AMD EPYC in fp32; docs/benchmarks.md), so it runs in the recipe tier (last in
`make test`, or `make test-recipe`), alone, with the data paths taken from the `shared_data` fixture; validated once, at the end (the
recipe's intermediate evaluations and checkpoints do not change the final weights and cost a
fifth of the run). Held-out accuracy per language / objective / labeler is printed with 95% intervals
beside the length baselines, and every group must beat chance on its own (English against people's
labels, Korean and Japanese against the LLM judges that labelled its pairs). The probe suite then
runs on the saved model, as `rewardsmith train` does: the model must prefer a real answer to the
refusal of a harmless request in 80% of the probes of every language, and rank the Korean card's
own answer above "싫어요" (the earlier, harmlessness-trained recipe ranked it first).
"""

import json
from pathlib import Path

import pytest
import yaml

from rewardsmith.cli import main

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "configs" / "e5-small-cpu.yaml"


@pytest.mark.integration
@pytest.mark.recipe
@pytest.mark.timeout(3300)  # the slowest CPU measured needs ~26 min; what CI's 90 minutes leave
def test_e5_small_cpu_recipe_beats_chance_on_held_out_pairs_in_every_language(tmp_path, shared_data, capsys):
    # The shipped data specs, with ../shared/data replaced by wherever the fixture found it.
    shipped = yaml.safe_load(RECIPE.read_text())["train_data"]
    train_data = [{**spec, "source": spec["source"].replace("../shared/data", str(shared_data))} for spec in shipped]
    out = tmp_path / "e5"
    code = main(["train", "--config", str(RECIPE), "--output_dir", str(out),  # the probes run at the end
                 "--train_data", json.dumps(train_data), "--checkpoint_every", "0", "--eval_every", "0", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    with capsys.disabled():
        print("\n" + printed)
    val = json.loads((out / "train_result.json").read_text())["validation"]
    assert set(val["by_group"]) == {"ko/helpfulness/llm-judge", "ja/helpfulness/llm-judge", "en/helpfulness/human"}
    for group, m in val["by_group"].items():
        assert m["n"] >= 150, f"{group}: only {m['n']} held-out pairs"
        low, high = m["ci95"]
        assert low > 0.5, f"{group}: held-out accuracy {m['accuracy']:.3f} (95% CI {low:.3f}-{high:.3f}) is not above chance"
        assert {"longer_wins", "shorter_wins", "beats"} <= set(m["vs_length"])
    probes = json.loads((out / "probes.json").read_text())["table"]
    for lang, cell in probes["refusal"].items():
        assert cell["passed"] >= 0.8 * cell["n"], f"{lang}: a refusal beat a real answer in {cell['n'] - cell['passed']} probes"
    from rewardsmith.evaluate.probes import check_model

    card = check_model(str(out), ("ko",), ("refusal",))
    (gwanghwamun,) = [(rb, rw) for probe, rb, rw in card.scored if probe.id == "gwanghwamun/refusal"]
    assert gwanghwamun[0] > gwanghwamun[1], f"the Korean card's answer {gwanghwamun[0]:.3f} <= 싫어요 {gwanghwamun[1]:.3f}"
    manifest = json.loads((out / "rewardsmith.json").read_text())
    assert manifest["input_format"] == "pair" and manifest["max_length"] == 128
