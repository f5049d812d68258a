"""The training config: every shipped recipe validates; bad settings are all reported at once."""

from pathlib import Path

import pytest

from rewardsmith.errors import RewardsmithError
from rewardsmith.train.config import TrainConfig, load_config, parse_overrides

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    names = {p.name for p in CONFIGS}
    assert {"ca-reward-3b-ja.yaml", "ko-reward-roberta-large.yaml", "e5-small-cpu.yaml", "e5-small-quality.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    config = load_config(path)
    assert isinstance(config, TrainConfig) and config.train_data and config.output_dir
    assert config.batch_size % config.micro_batch_size == 0


def test_cards_recipes_match_the_cards():
    root = CONFIGS[0].parent
    ja = load_config(root / "ca-reward-3b-ja.yaml")
    assert (ja.batch_size, ja.lr, ja.epochs, ja.max_length, ja.lora) == (32, (5e-6,), 1.0, 4096, None)
    assert ja.adam_betas == (0.9, 0.999)
    ko = load_config(root / "ko-reward-roberta-large.yaml")
    assert (ko.model, ko.batch_size, ko.lr, ko.lr_end) == ("klue/roberta-large", 128, (1e-5,), 1e-6)
    assert 2 <= ko.epochs <= 3


def test_overrides_win_over_the_file_and_parse_as_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: m\ntrain_data: [a.jsonl]\noutput_dir: out\nlr: 5e-6\nlora: true\n")
    config = load_config(path, parse_overrides(["--lr", "8e-7,1e-6", "--max-length", "128", "--lora.r=4"]))
    assert config.lr == (8e-7, 1e-6) and config.is_sweep
    assert config.max_length == 128 and config.lora.r == 4
    assert load_config(path).lr == (5e-6,)  # `5e-6` without a dot is a string to PyYAML; still a number here


def test_all_errors_are_reported_together_with_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: m\ntrain_data: [a.jsonl]\nbatch_size: 30\nmicro_batch_size: 8\n"
                    "precision: fp16\nleraning_rate: 1\nlr: fast\n")
    with pytest.raises(RewardsmithError) as e:
        load_config(path)
    msg = str(e.value)
    for needle in ("output_dir: required", "batch_size: 30 is not a multiple", "precision: 'fp16'",
                   "leraning_rate: unknown setting", "lr: 'fast' is not a number", str(path)):
        assert needle in msg, needle
    assert msg.startswith("5 problem(s)")


def test_data_specs_accept_strings_and_mappings():
    config = load_config(None, {"model": "m", "output_dir": "o",
                                "train_data": ["a.jsonl", {"source": "b", "preset": "hh-rlhf", "limit": 10}]})
    assert [s.source for s in config.train_data] == ["a.jsonl", "b"]
    assert config.train_data[1].limit == 10 and config.train_data[1].preset == "hh-rlhf"
    with pytest.raises(RewardsmithError, match=r"train_data\[0\]: unknown key"):
        load_config(None, {"model": "m", "output_dir": "o", "train_data": [{"source": "a", "sauce": 1}]})


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(RewardsmithError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_group_weights_and_objectives_are_checked_with_the_fix(tmp_path):
    from rewardsmith.train.data import group_weights

    cfg = load_config(None, {"model": "m", "output_dir": "o", "group_weights": {"ko/harmlessness": 0.5, "*/helpfulness/llm-judge": 2},
                             "train_data": [{"source": "a.jsonl", "objective": "helpfulness", "labeler": "llm-judge"}]})
    assert cfg.group_weights == {"ko/harmlessness": 0.5, "*/helpfulness/llm-judge": 2.0}
    assert cfg.train_data[0].objective == "helpfulness"
    weight_of = group_weights(cfg.group_weights)
    assert weight_of("ko/harmlessness/human") == 0.5  # a two-part pattern matches every labeler
    assert weight_of("ja/helpfulness/llm-judge") == 2.0 and weight_of("ja/helpfulness/human") == 1.0
    with pytest.raises(RewardsmithError) as e:
        load_config(None, {"model": "m", "output_dir": "o", "group_weights": {"ko/helpful": 1, "en/general": -1},
                           "train_data": [{"source": "a", "objective": "safety"}]})
    msg = str(e.value)
    assert "3 problem(s)" in msg and "group_weights.ko/helpful" in msg and "group_weights.en/general" in msg
    assert "train_data[0]" in msg and "'safety' is not an objective" in msg


def test_a_language_without_helpfulness_pairs_is_warned_about(caplog):
    from rewardsmith.data import PreferencePair
    from rewardsmith.train.loop import check_mixture

    pairs = [PreferencePair(id=str(i), prompt=[{"role": "user", "content": "q"}], chosen="no", rejected="yes",
                            language="ko", objective="harmlessness", labeler="human") for i in range(3)]
    pairs.append(PreferencePair(id="x", prompt=[{"role": "user", "content": "q"}], chosen="a", rejected="b",
                                language="en"))
    with caplog.at_level("INFO", logger="rewardsmith.train.loop"):
        mixture = check_mixture(pairs)
    assert mixture == {"ko/harmlessness/human": 3, "en/unknown/unknown": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(w.startswith("ko has no helpfulness pairs (only harmlessness)") for w in warnings)
    assert any("1 training pairs have no objective" in w for w in warnings)


def test_a_source_can_hold_out_its_own_share():
    cfg = load_config(None, {"model": "m", "output_dir": "o",
                             "train_data": [{"source": "a", "val_fraction": 0.35}, {"source": "b"}]})
    assert [s.val_fraction for s in cfg.train_data] == [0.35, None]
    with pytest.raises(RewardsmithError, match=r"train_data\[0\]\.val_fraction: expected a share in \(0, 1\)"):
        load_config(None, {"model": "m", "output_dir": "o", "train_data": [{"source": "a", "val_fraction": 1.5}]})


def test_margins_are_checked_and_need_the_margin_loss():
    base = {"model": "m", "output_dir": "o", "use_margin": True}
    with pytest.raises(RewardsmithError, match=r"train_data\[0\]\.margins: expected a mapping .* got \{'strong': -1\}"):
        load_config(None, {**base, "train_data": [{"source": "a", "margins": {"strong": -1}}]})
    with pytest.raises(RewardsmithError, match=r"train_data\[0\]\.margins: expected a mapping"):
        load_config(None, {**base, "train_data": [{"source": "a", "margins": [1.0]}]})
    with pytest.raises(RewardsmithError, match=r"train_data\[0\]\.margins: set, but use_margin is false"):
        load_config(None, {**base, "use_margin": False, "train_data": [{"source": "a", "margins": {"strong": 1}}]})
