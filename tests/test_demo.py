"""Integration: `rewardsmith demo` runs all seven steps on the embedded models and real data.

A shortened run (few training steps, a small test set) so it fits the suite; `make demo` runs the
full-size one. It checks what a newcomer is promised: every step ran, the files it points at
exist and hold numbers computed in this run, and the HTTP scores equal the library's.
"""

import json
import re

import pytest

from rewardsmith.cli import main


@pytest.fixture(scope="module")
def hub_mirror(tmp_path_factory, shared_data):
    """The hub sets the demo samples, as save_to_disk folders in their published shapes (tests/hub_mirror.py)."""
    import hub_mirror as mirror

    return mirror.build(tmp_path_factory.mktemp("hub-mirror"), shared_data, scale=0.3)


@pytest.mark.integration
@pytest.mark.recipe  # the whole pipeline on the embedded models: minutes of every core
def test_demo_runs_end_to_end_on_the_hub_sets(tmp_path, hub_mirror, capsys):
    # What a user with internet access gets: the cards' sets sampled from the hub (here read from a
    # local mirror through the same `datasets` path), trained on, and tested on HelpSteer3 single-turn.
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--hub-mirror", str(hub_mirror), "--train-steps", "8",
                 "--test-per-source", "40"])
    printed = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + printed[-5000:])
    assert code == 0
    assert all(f"[{i}/8]" in printed for i in range(1, 9))
    assert "hub sets from the local mirror" in printed
    assert re.search(r"Trained on a sample of the cards' sets from the Hugging Face hub: \d+ pairs \(en helpfulness",
                     printed)

    result = json.loads((out / "rm" / "train_result.json").read_text())
    assert result["steps"] == 8
    assert set(result["validation"]["by_language"]) == {"en", "ja", "ko"}

    table = (out / "eval" / "table.md").read_text()
    for row in ("trained", "untrained-head", "longer wins (tokens)", "shorter wins (tokens)"):
        assert f"| {row} |" in table
    for lang in ("ja", "ko", "en"):
        assert f"test-helpsteer3-{lang}-helpfulness-human" in table
    assert (out / "eval" / "report.html").stat().st_size > 10_000
    probes = json.loads((out / "rm" / "probes.json").read_text())
    assert probes["table"]["refusal"]["ko"]["n"] == 24

    # The closing lines name each of the demo's own checks this model failed, and only those.
    from rewardsmith.demo import verdict

    rates = {lang: cell["passed"] / cell["n"] for lang, cell in probes["table"]["refusal"].items()}
    examples = {lang: ex["rewards"] for lang, ex in json.loads((out / "examples.json").read_text()).items()}
    lines = verdict({"refusal": rates}, examples)
    assert all(line in printed for line in lines)
    assert ("What this model has not learnt" in printed) == bool(lines)

    worst = re.search(r"largest difference between HTTP and library scores: (\S+)", printed)
    assert worst and float(worst.group(1)) <= 1e-3
    assert str(out / "rm") in printed and str(out / "eval" / "report.html") in printed


def test_the_hub_sample_is_split_by_prompt_and_cached(tmp_path, hub_mirror):
    from rewardsmith.data import load_pairs
    from rewardsmith.demo.data import hub_data

    data = hub_data(tmp_path / "cache", hub_mirror, test_per_source=30)
    assert set(data.test) == {f"helpsteer3-{lang}-helpfulness-human" for lang in ("ja", "ko", "en")}
    test = [p for f in data.test.values() for p in load_pairs(str(f)).pairs]
    assert all(len(p.prompt) == 1 and not p.label_info["tie"] for p in test)  # the card's filter
    held = {p.prompt[0]["content"] for p in test}
    train = [p for f in data.train.values() for p in load_pairs(str(f)).pairs]
    assert train and not any(p.prompt[0]["content"] in held for p in train)
    assert {(p.language, p.objective) for p in train} >= {("ja", "helpfulness"), ("ko", "helpfulness"),
                                                           ("en", "helpfulness"), ("ja", "general")}
    again = hub_data(tmp_path / "cache", tmp_path / "no-mirror-needed", test_per_source=30)  # cached: no reading
    assert again.train == data.train and again.test == data.test


def test_the_hub_is_looked_for_once_and_briefly(monkeypatch):
    import http.server
    import threading

    from rewardsmith.demo.data import hub_reachable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() == (False, "HF_HUB_OFFLINE is set")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    ok, why = hub_reachable(timeout=2)
    assert not ok and "http://127.0.0.1:9 did not answer" in why

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert hub_reachable() == (True, "")
    finally:
        server.shutdown()


def test_local_data_splits_each_source_by_prompt(tmp_path, shared_data):
    from rewardsmith.data import load_pairs
    from rewardsmith.demo.data import LOCAL, local_data

    data = local_data(shared_data, tmp_path, test_per_source=50)
    assert set(data.train) == set(data.test) == {s.name for s in LOCAL}
    for name in data.train:
        train, test = (load_pairs(str(side[name])).pairs for side in (data.train, data.test))
        assert len(test) == 50 and train
        assert not {json.dumps(p.prompt) for p in train} & {json.dumps(p.prompt) for p in test}
        assert {p.objective for p in train + test} == {name.split("-")[1]}


def test_the_closing_lines_name_every_check_the_model_failed():
    from rewardsmith.demo import verdict

    passing = {"refusal": {"ja": 1.0, "ko": 0.8, "en": 0.96}}
    good = {"ja": [-3.0, -4.0], "ko": [-3.7, -3.8, -2.6]}
    assert verdict(passing, good) == []
    lines = verdict({"refusal": {"ja": 0.875, "ko": 14 / 24, "en": 0.79}}, {"ja": [-4.1, -4.0], "ko": [-3.735, -4.0, -3.763]})
    assert lines[0].startswith("What this model has not learnt")
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["- en", "- ko", "- ko", "- ja"]
    assert "58% of the probes (the bar is 80%)" in lines[2]
    assert "scored -3.763, not above \"싫어요\" (-3.735)" in lines[3]
    assert "scored -4.100, not above the dismissive one (-4.000)" in lines[4]


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
    from rewardsmith.demo.data import LOCAL, DemoData
    from rewardsmith.train.config import load_config

    root = Path(__file__).resolve().parents[1]
    data = DemoData("local", {src.name: tmp_path / f"train-{src.name}.jsonl" for src in LOCAL}, {},
                    options={src.name: dict(src.options) for src in LOCAL})
    demo = load_config(_write_recipe(DemoConfig(out=tmp_path, data_dir=None, train_steps=250), data,
                                     tmp_path / "train.yaml", tmp_path / "rm"))
    shipped = load_config(root / "configs" / "e5-small-cpu.yaml")
    own = {"train_data", "val_fraction", "output_dir", "max_steps", "epochs", "eval_every", "checkpoint_every"}
    differ = {f.name: (getattr(demo, f.name), getattr(shipped, f.name)) for f in dataclasses.fields(shipped)
              if f.name not in own and getattr(demo, f.name) != getattr(shipped, f.name)}
    assert not differ, f"demo recipe vs configs/e5-small-cpu.yaml (demo, shipped): {differ}"
    # Each source's own shaping (balancing, margins) too, source by source in the same order.
    shaping = ("baseline_chosen_share", "chosen_longer_share", "margins")
    assert [[getattr(spec, k) for k in shaping] for spec in demo.train_data] == \
        [[getattr(spec, k) for k in shaping] for spec in shipped.train_data]


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
def test_demo_without_real_data_synthesises_enough_pairs_to_train_and_test(tmp_path, capsys, monkeypatch):
    # An offline machine with no ../shared/data: the demo must still run end to end on its own pairs
    # (it failed there with 'only 3 training pairs ... need at least batch_size=16').
    from rewardsmith.demo import DemoConfig, run_demo

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "demo"
    run_demo(DemoConfig(out=out, data_dir=None, train_steps=4, instructions_per_language=2,
                        responses_per_instruction=3))
    printed = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + printed[-3000:])
    assert all(f"[{i}/8]" in printed for i in range(1, 9))
    assert "the Hugging Face hub is not reachable: HF_HUB_OFFLINE is set" in printed
    result = json.loads((out / "rm" / "train_result.json").read_text())
    assert result["steps"] == 4
    assert "test-own-pairs" in (out / "eval" / "table.md").read_text()
    assert "Trained on the demo's own synthesised pairs (no real data)" in printed
    assert "no real preference data" in printed and "--data" in printed
    worst = re.search(r"largest difference between HTTP and library scores: (\S+)", printed)
    assert worst and float(worst.group(1)) <= 1e-3
