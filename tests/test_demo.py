"""Integration: `rewardsmith demo` runs all seven steps on the embedded models and real data.

A shortened run (few training steps, a small test set) so it fits the suite; `make demo` runs the
full-size one. It checks what a newcomer is promised: every step ran, the files it points at
exist and hold numbers computed in this run, and the HTTP scores equal the library's.
"""

import json
import re

import pytest

from rewardsmith.cli import main


@pytest.mark.integration
@pytest.mark.recipe  # the whole pipeline on the embedded models: minutes of every core
def test_demo_runs_end_to_end(tmp_path, shared_data, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--data", str(shared_data), "--train-steps", "8",
                 "--test-per-language", "40"])
    printed = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + printed[-4000:])
    assert code == 0
    assert all(f"[{i}/7]" in printed for i in range(1, 8))

    synth = json.loads((out / "synth" / "report.json").read_text())
    assert synth  # the synth stage wrote its report (counts of pairs, ties, flips, failures)

    result = json.loads((out / "rm" / "train_result.json").read_text())
    assert result["steps"] == 8
    assert set(result["validation"]["by_language"]) == {"en", "ja", "ko"}

    table = (out / "eval" / "table.md").read_text()
    for row in ("trained", "untrained-head"):
        assert row in table
    for column in ("test-en", "test-ko", "test-ja"):
        assert column in table
    assert (out / "eval" / "report.html").stat().st_size > 10_000

    worst = re.search(r"largest difference between HTTP and library scores: (\S+)", printed)
    assert worst and float(worst.group(1)) <= 1e-3
    assert str(out / "rm") in printed and str(out / "eval" / "report.html") in printed


@pytest.mark.parametrize("has_bf16, expected", [(True, (250, "bf16")), (False, (80, "fp32"))])
def test_demo_trains_fewer_steps_where_training_runs_in_fp32(monkeypatch, has_bf16, expected):
    # ~5x fewer training tokens/s without bf16 matmul units: the demo keeps its time budget.
    import rewardsmith.score
    from rewardsmith.demo import default_train_steps

    monkeypatch.setattr(rewardsmith.score, "bf16_supported", lambda device: has_bf16)
    assert default_train_steps() == expected


def test_demo_trains_with_the_shipped_cpu_recipe(tmp_path):
    # The demo carries its own copy of configs/e5-small-cpu.yaml (an installed package has no
    # configs/ folder): every setting but the data, the hold-out, the step budget and the output
    # folder must match the shipped recipe, so the demo shows the recipe the docs measure.
    import dataclasses
    from pathlib import Path

    from rewardsmith.demo import DemoConfig, _write_recipe
    from rewardsmith.train.config import load_config

    root = Path(__file__).resolve().parents[1]
    splits = {"train": {lang: tmp_path / f"train-{lang}.jsonl" for lang in ("en", "ko", "ja")}}
    demo = load_config(_write_recipe(DemoConfig(out=tmp_path, data_dir=None, train_steps=250), splits,
                                     tmp_path / "train.yaml", tmp_path / "rm"))
    shipped = load_config(root / "configs" / "e5-small-cpu.yaml")
    own = {"train_data", "val_fraction", "output_dir", "max_steps", "epochs", "eval_every", "checkpoint_every"}
    differ = {f.name: (getattr(demo, f.name), getattr(shipped, f.name)) for f in dataclasses.fields(shipped)
              if f.name not in own and getattr(demo, f.name) != getattr(shipped, f.name)}
    assert not differ, f"demo recipe vs configs/e5-small-cpu.yaml (demo, shipped): {differ}"


def _pairs(n_prompts: int, per_prompt: int = 3):
    from rewardsmith.data.record import PreferencePair

    return [PreferencePair(id=f"{i}-{j}", prompt=[{"role": "user", "content": f"question {i}"}],
                           chosen=f"good {j}", rejected=f"bad {j}") for i in range(n_prompts) for j in range(per_prompt)]


@pytest.mark.parametrize("n_prompts", [3, 4, 7, 18, 100])
def test_the_demos_own_pairs_split_three_ways_by_whole_prompts(n_prompts):
    from rewardsmith.demo import split_prompts_three_ways

    pairs = _pairs(n_prompts)
    train, val, test = split_prompts_three_ways(pairs)
    prompts = [{p.prompt[0]["content"] for p in side} for side in (train, val, test)]
    assert all(prompts), "every side needs a prompt"
    assert not (prompts[0] & prompts[1] or prompts[0] & prompts[2] or prompts[1] & prompts[2])
    assert sorted(p.id for p in train + val + test) == sorted(p.id for p in pairs)
    if n_prompts >= 18:
        assert len(prompts[2]) == round(0.3 * n_prompts) and len(prompts[1]) == round(0.15 * n_prompts)
    assert {p.id for p in split_prompts_three_ways(list(reversed(pairs)))[2]} == {p.id for p in test}  # order-free


def test_too_few_judged_pairs_is_a_clear_error_that_names_the_fix():
    from rewardsmith.demo import split_prompts_three_ways
    from rewardsmith.errors import RewardsmithError

    with pytest.raises(RewardsmithError, match="too few to train.*--data"):
        split_prompts_three_ways(_pairs(2))


def test_find_data_dir_finds_the_data_beside_the_checkout_from_any_folder(monkeypatch, tmp_path, shared_data):
    from rewardsmith.demo import find_data_dir

    monkeypatch.delenv("REWARDSMITH_SHARED_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # ../shared/data is not there from here; beside the (editable) checkout it is
    assert find_data_dir(None) == shared_data.resolve()


@pytest.mark.integration
@pytest.mark.recipe  # synthesises, judges, trains and serves with the embedded models: minutes
def test_demo_without_real_data_synthesises_enough_pairs_to_train_and_test(tmp_path, capsys):
    # A user's machine has no ../shared/data: the demo must still run end to end on its own pairs
    # (it failed there with 'only 3 training pairs ... need at least batch_size=16').
    from rewardsmith.demo import DemoConfig, run_demo

    out = tmp_path / "demo"
    run_demo(DemoConfig(out=out, data_dir=None, train_steps=4, instructions_per_language=2,
                        responses_per_instruction=3))
    printed = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + printed[-3000:])
    assert all(f"[{i}/7]" in printed for i in range(1, 8))
    result = json.loads((out / "rm" / "train_result.json").read_text())
    assert result["steps"] == 4
    assert "test-all" in (out / "eval" / "table.md").read_text()
    assert "no real preference data" in printed and "--data" in printed
    worst = re.search(r"largest difference between HTTP and library scores: (\S+)", printed)
    assert worst and float(worst.group(1)) <= 1e-3
