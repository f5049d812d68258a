"""The checkpoint manifest, the saved config, and loading foreign models with stated defaults."""

from __future__ import annotations

import json
import logging

import pytest

from rewardsmith.errors import RewardsmithError
from rewardsmith.models import MANIFEST_NAME, Manifest, init_reward_model, load_reward_model, save_reward_model


def test_manifest_round_trips(tmp_path):
    m = Manifest(input_format="chat_template", max_length=4096, truncation_side="left", pooling="last_token",
                 chat_template="{{ messages }}", score_mean=0.5, score_std=2.0, base_model="gemma-3-270m")
    m.save(tmp_path)
    assert Manifest.load(tmp_path) == m


def test_invalid_fields_are_reported_together():
    with pytest.raises(RewardsmithError) as e:
        Manifest(input_format="prompt", max_length=2, truncation_side="middle", pooling="cls")
    msg = str(e.value)
    assert "input_format='prompt'" in msg and "truncation_side='middle'" in msg and "max_length=2" in msg


def test_load_names_the_file_and_the_problem(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text('{"input_format": "pair",\n "max_length": }')
    with pytest.raises(RewardsmithError, match=rf"{MANIFEST_NAME}:2: not valid JSON"):
        Manifest.load(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(
        {"input_format": "pair", "max_length": 512, "truncation_side": "left", "pooling": "cls", "polling": 1}))
    with pytest.raises(RewardsmithError, match="unknown field.*polling"):
        Manifest.load(tmp_path)


def test_defaults_follow_the_architecture(tiny_encoder_dir, tiny_decoder_dir):
    enc = init_reward_model(tiny_encoder_dir)
    assert (enc.manifest.input_format, enc.manifest.pooling, enc.manifest.chat_template) == ("pair", "cls", None)
    assert enc.manifest.max_length == 512  # the model's own limit, below the 4096 default
    dec = init_reward_model(tiny_decoder_dir, max_length=1024, truncation_side="right")
    assert (dec.manifest.input_format, dec.manifest.pooling) == ("chat_template", "last_token")
    assert (dec.manifest.max_length, dec.manifest.truncation_side) == (1024, "right")
    assert dec.manifest.chat_template == dec.tokenizer.chat_template
    with pytest.raises(RewardsmithError, match="max_length=99999 exceeds"):
        init_reward_model(tiny_decoder_dir, max_length=99999)


@pytest.mark.parametrize("fixture", ["tiny_encoder_dir", "tiny_decoder_dir"])
def test_saved_model_carries_manifest_and_raw_score_config(fixture, request, tmp_path):
    rm = init_reward_model(request.getfixturevalue(fixture), max_length=128)
    out = save_reward_model(rm, tmp_path / "rm", score_stats=(0.25, 1.5))
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "regression"  # pipeline's default function is then "none"
    assert config["id2label"] == {"0": "reward"} and len(config["id2label"]) == 1
    assert config["pad_token_id"] == rm.tokenizer.pad_token_id
    assert list(out.glob("*.safetensors")) and not list(out.glob("*.bin"))
    loaded = load_reward_model(out)
    assert loaded.manifest == rm.manifest
    assert (loaded.manifest.score_mean, loaded.manifest.score_std) == (0.25, 1.5)
    assert loaded.tokenizer.pad_token_id == rm.tokenizer.pad_token_id


def test_foreign_model_loads_with_a_stated_notice(tiny_decoder_dir, caplog):
    with caplog.at_level(logging.WARNING):
        rm = load_reward_model(tiny_decoder_dir)  # written by plain transformers: no manifest
    notice = [r.getMessage() for r in caplog.records if MANIFEST_NAME in r.getMessage()]
    assert len(notice) == 1 and "input_format=chat_template" in notice[0] and "max_length=2048" in notice[0]
    assert rm.manifest.pooling == "last_token"
    assert rm.tokenizer.pad_token_id is not None  # padding filler; pooling reads the mask, not the pad id


def test_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(RewardsmithError, match="no config.json"):
        load_reward_model(tmp_path)


@pytest.mark.parametrize("typo", ["/no/such/rm", "./runs/rm", "runs/e5/rm", "~/no-such-rm", "runs/"])
def test_a_missing_folder_is_named_as_one_not_as_a_malformed_hub_id(typo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths are looked up from here: a checkout may hold a runs/ of its own
    with pytest.raises(RewardsmithError, match="no such folder"):
        load_reward_model(typo)
