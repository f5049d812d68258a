"""Two real (embedded) reward models on the real sets in ../shared/data: table, diagnostics, HTML."""

import json

import pytest

from rewardsmith.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def e5_reward_models(tmp_path_factory, embedded_model):
    """multilingual-e5-small with two freshly initialised heads (seeds 0 and 1), saved as reward models."""
    import torch

    from rewardsmith.models import init_reward_model, save_reward_model

    embedded_model("multilingual-e5-small")
    root = tmp_path_factory.mktemp("e5")
    out = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        out[seed] = save_reward_model(init_reward_model("multilingual-e5-small", max_length=256), root / f"e5-{seed}")
    return out


def test_two_models_on_shared_data(tmp_path, shared_data, e5_reward_models, capsys):
    out, cache = tmp_path / "eval", tmp_path / "cache"
    datasets = [shared_data / "hh-rlhf-test", shared_data / "kudge", shared_data / "square-ko-ood",
                shared_data / "ko-hh-rlhf-harmless"]
    argv = ["evaluate", "--model", f"seed0={e5_reward_models[0]}", "--model", f"seed1={e5_reward_models[1]}",
            *[a for d in datasets for a in ("--dataset", str(d))], "--limit", "25", "--bootstrap", "500",
            "--out", str(out), "--cache-dir", str(cache)]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    names = [d.name for d in datasets]
    assert res["columns"] == [*names, "mean"]
    for model in ("seed0", "seed1"):
        for name in names:
            cell = res["table"][model][name]
            assert cell["n"] == 25 and 0.0 <= cell["ci_low"] <= cell["accuracy"] <= cell["ci_high"] <= 1.0
    # Korean and English pairs both scored (kudge has both), reward statistics per language.
    assert {"en", "ko"} <= {s["language"] for s in res["reward_stats"]}
    assert len(res["length_bias"]) == 2 * len(names) and len(res["calibration"]) == 2 * len(names)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "seed0" in html
    assert [m["name"] for m in res["models"] if m["kind"] == "baseline"] == ["longer wins (characters)",
                                                                            "shorter wins (characters)"]
    scored_first = {m["name"]: m["responses_scored"] for m in res["models"] if m["kind"] == "reward model"}
    assert all(n > 0 for n in scored_first.values())
    capsys.readouterr()

    # A rerun answers every score from the cache and gives the identical table.
    assert main([*argv[:-4], "--out", str(tmp_path / "again"), "--cache-dir", str(cache)]) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["table"] == res["table"]
    assert all(m["responses_scored"] == 0 for m in again["models"] if m["kind"] == "reward model")
