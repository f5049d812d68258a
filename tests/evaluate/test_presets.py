"""The Japanese card's two columns on fixtures in the published shape (tests/fixtures/data, written
by the data layer): HelpSteer3-ja reported per split and as their mean; llm-jp-arena with the
card's filters. Expected counts are computed here from the raw fixture rows with the card's rules."""

import json
from pathlib import Path

import pytest

from rewardsmith.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def helpsteer3_expected() -> dict[str, int]:
    """Card filter: language == "japanese", single-turn (len(context) == 1), overall_preference != 0."""
    out = {}
    for split in ("train", "validation"):
        rows = [json.loads(line) for line in (FIXTURES / "helpsteer3" / "preference" / f"{split}.jsonl")
                .read_text(encoding="utf-8").splitlines() if line.strip()]
        out[split] = sum(r["language"] == "japanese" and len(r["context"]) == 1 and r["overall_preference"] != 0
                         for r in rows)
        out[f"{split} rows"] = len(rows)
    return out


def arena_expected() -> tuple[int, int]:
    """Card filter: turn == 1 and winner in {model_a, model_b}. Returns (kept, rows)."""
    import pyarrow.parquet as pq

    rows = [r for f in sorted((FIXTURES / "llm-jp-arena").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return sum(r["turn"] == 1 and r["winner"] in ("model_a", "model_b") for r in rows), len(rows)


@pytest.fixture(scope="module")
def reward_models(tmp_path_factory, tiny_encoder_dir, tiny_decoder_dir):
    from rewardsmith.models import init_reward_model, save_reward_model

    root = tmp_path_factory.mktemp("rms")
    return {name: save_reward_model(init_reward_model(str(base), max_length=128), root / name)
            for name, base in (("enc", tiny_encoder_dir), ("dec", tiny_decoder_dir))}


def test_japanese_card_table_on_fixtures(tmp_path, reward_models):
    hs, (arena_kept, arena_rows) = helpsteer3_expected(), arena_expected()
    assert hs["train"] > 0 and hs["validation"] > 0 and arena_kept > 0  # the fixtures exercise every column
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(reward_models["enc"]), "--model", str(reward_models["dec"]),
               "--dataset", f"helpsteer3-ja={FIXTURES / 'helpsteer3'}",
               "--dataset", f"llm-jp-arena={FIXTURES / 'llm-jp-arena'}",
               "--out", str(out), "--no-cache", "--bootstrap", "200", "--precision", "fp32", "--no-plots"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["columns"] == ["helpsteer3-ja train", "helpsteer3-ja validation", "helpsteer3-ja",
                              "llm-jp-arena", "mean"]
    datasets = {d["name"]: d for d in res["datasets"]}
    assert datasets["helpsteer3-ja"]["kept"] == hs["train"] + hs["validation"]
    assert datasets["helpsteer3-ja"]["dropped"] == hs["train rows"] + hs["validation rows"] - hs["train"] - hs["validation"]
    assert datasets["llm-jp-arena"]["kept"] == arena_kept
    assert datasets["llm-jp-arena"]["dropped"] == arena_rows - arena_kept
    for model in ("enc", "dec"):
        row = res["table"][model]
        assert row["helpsteer3-ja train"]["n"] == hs["train"]
        assert row["helpsteer3-ja validation"]["n"] == hs["validation"]
        # The card's HelpSteer3 number is the mean of the two split accuracies, not the pooled one.
        mean = (row["helpsteer3-ja train"]["accuracy"] + row["helpsteer3-ja validation"]["accuracy"]) / 2
        assert row["helpsteer3-ja"]["accuracy"] == pytest.approx(mean)
        assert row["llm-jp-arena"]["n"] == arena_kept
        # The table's mean averages dataset columns (HelpSteer3 once), as the card's mean does.
        assert row["mean"]["accuracy"] == pytest.approx((mean + row["llm-jp-arena"]["accuracy"]) / 2)
    table = (out / "table.md").read_text()
    assert "helpsteer3-ja validation" in table and "llm-jp-arena" in table
    assert (out / "report.html").is_file() and not (out / "accuracy.png").exists()  # --no-plots
