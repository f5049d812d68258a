"""`rewardsmith data inspect | convert | presets` through the real entry point."""

from __future__ import annotations

import json

import pytest
from pathlib import Path

from rewardsmith.cli import main
from rewardsmith.data import load_pairs

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def test_inspect_text_reports_kept_dropped_and_lengths(capsys):
    assert main(["data", "inspect", str(FIX / "helpsteer3"), "--preset", "helpsteer3-ja"]) == 0
    out = capsys.readouterr().out
    assert "kept 5 pairs, dropped 7 rows" in out
    assert "helpsteer3 / train / ja: 3" in out and "tie: 2" in out
    assert "prompt_chars" in out


def test_inspect_json_with_tokenizer_and_max_length(capsys, tiny_encoder_dir):
    args = ["data", "inspect", str(FIX / "llm-jp-arena"), "--json", "--tokenizer", str(tiny_encoder_dir),
            "--max-length", "4"]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kept"] == 10 and d["kept_by_language"] == {"ja": 10}
    lengths = d["lengths"]
    assert lengths["pairs"] == 10 and lengths["chosen_chars"]["min"] == 10  # len("モデルAの回答1-1")
    assert lengths["pair_tokens"]["max"] > 4
    assert 0 < lengths["over_max_length"] <= 10


@pytest.mark.parametrize("which", ["tiny_encoder_dir", "tiny_decoder_dir"])
def test_inspect_with_a_model_counts_the_input_it_will_see(capsys, request, tmp_path, which):
    """--tokenizer naming a model: pair lengths are `models.encode` lengths (chat template / pair
    encoding, special tokens), as training sees them; a tokenizer alone counts raw text and says so."""
    import dataclasses

    from transformers import AutoTokenizer

    from rewardsmith.models import encode, init_reward_model

    model_dir = request.getfixturevalue(which)
    assert main(["data", "inspect", str(FIX / "llm-jp-arena"), "--json", "--tokenizer", str(model_dir)]) == 0
    lengths = json.loads(capsys.readouterr().out)["lengths"]
    rm = init_reward_model(model_dir)
    uncut = dataclasses.replace(rm.manifest, max_length=1 << 30)
    expected = [max(len(encode(rm.tokenizer, uncut, *p.chosen_conversation())),
                    len(encode(rm.tokenizer, uncut, *p.rejected_conversation())))
                for p in load_pairs(FIX / "llm-jp-arena").pairs]
    assert (lengths["pair_tokens"]["min"], lengths["pair_tokens"]["max"]) == (min(expected), max(expected))
    assert lengths["tokens_counted"].startswith("model input")
    assert lengths["max_length"] == rm.manifest.max_length and lengths["over_max_length"] == 0

    AutoTokenizer.from_pretrained(model_dir).save_pretrained(tmp_path / "tok")
    assert main(["data", "inspect", str(FIX / "llm-jp-arena"), "--tokenizer", str(tmp_path / "tok")]) == 0
    out = capsys.readouterr().out
    assert "pair_tokens counts the raw text" in out
    raw_max = float(next(line for line in out.splitlines() if "pair_tokens " in line).split("/")[-2])
    assert raw_max < max(expected)  # the template and special tokens were not counted


def test_inspect_errors_are_one_line(capsys, tmp_path):
    (tmp_path / "x.jsonl").write_text('{"question": "q", "good": "a", "bad": "b"}\n')
    assert main(["data", "inspect", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--column" in err
    assert main(["data", "inspect", str(tmp_path / "x.jsonl"), "--max-length", "5"]) == 2
    assert "--tokenizer" in capsys.readouterr().err
    assert main(["data", "inspect", str(tmp_path / "x.jsonl"), "--column", "prompt=question",
                 "--column", "chosen=good", "--column", "rejected=bad"]) == 0


def test_convert_writes_pairs_that_read_back(tmp_path, capsys):
    out = tmp_path / "pairs.parquet"
    assert main(["data", "convert", str(FIX / "pku-saferlhf-ko"), str(out), "--preset", "pku-saferlhf-ko-better"]) == 0
    assert "wrote 3 pairs" in capsys.readouterr().err
    back = load_pairs(out).pairs
    assert back == load_pairs(FIX / "pku-saferlhf-ko", preset="pku-saferlhf-ko-better").pairs
    assert main(["data", "convert", str(FIX / "pku-saferlhf-ko"), str(tmp_path / "x.txt")]) == 2


def test_presets_listing(capsys):
    assert main(["data", "presets", "--json"]) == 0
    names = [p["name"] for p in json.loads(capsys.readouterr().out)]
    assert "helpsteer3-ja" in names and "llm-jp-arena" in names


@pytest.mark.integration
def test_inspect_counts_tokens_with_an_embedded_model_by_its_short_name(capsys, embedded_model):
    """`--tokenizer multilingual-e5-small` means the prepared embedded folder, not a hub id."""
    embedded_model("multilingual-e5-small")
    source = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "helpsteer3"
    assert main(["data", "inspect", str(source), "--tokenizer", "multilingual-e5-small", "--max-length", "16"]) == 0
    assert "pairs over 16 tokens:" in capsys.readouterr().out
