"""Integration: the CPU recipe trains multilingual-e5-small on real pairs and beats chance on held-out prompts.

Runs `rewardsmith train --config configs/e5-small-cpu.yaml` through the CLI as shipped (100 steps
of 16 pairs), with the data paths taken from the `shared_data` fixture.
Held-out accuracy per language is printed with 95% intervals; the assertion is on the pooled set.
"""

import json
from pathlib import Path

import pytest

from rewardsmith.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_e5_small_cpu_recipe_beats_chance_on_held_out_pairs(tmp_path, shared_data, capsys):
    train_data = [
        {"source": str(shared_data / "hh-rlhf-test" / "helpful-*.test.jsonl.gz"), "limit": 1800},
        {"source": str(shared_data / "ko-hh-rlhf-harmless"), "limit": 1200},
        {"source": str(shared_data / "ja-llm-judged"), "limit": 1800},
    ]
    out = tmp_path / "e5"
    code = main(["train", "--config", str(ROOT / "configs" / "e5-small-cpu.yaml"), "--output_dir", str(out),
                 "--train_data", json.dumps(train_data), "--checkpoint_every", "0",
                 "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    with capsys.disabled():
        print("\n" + printed)
    val = json.loads((out / "train_result.json").read_text())["validation"]
    assert set(val["by_language"]) == {"en", "ja", "ko"}
    assert all(m["n"] >= 100 for m in val["by_language"].values())
    low, high = val["ci95"]
    assert low > 0.5, f"held-out accuracy {val['accuracy']:.3f} (95% CI {low:.3f}-{high:.3f}) is not above chance"
    manifest = json.loads((out / "rewardsmith.json").read_text())
    assert manifest["input_format"] == "pair" and manifest["max_length"] == 256
