"""Behaviour of the training loop on tiny in-process models (fp32, a few dozen steps).

The loss falls and every trainable tensor changes; frozen embeddings stay put; a decoder whose
tokenizer has no pad token trains with LoRA and exports a merged model equal to base + adapter;
the sweep keeps the best lr; a killed run resumes to the same weights; 2 processes on gloo give
the 1-process result at the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from rewardsmith.cli import main
from tests.ports import free_port, run_distributed

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path, model_dir, **overrides) -> Path:
    data = synthetic.write_pairs(tmp_path / "pairs.jsonl", 240)
    config = {
        "model": str(model_dir), "train_data": [str(data)], "output_dir": str(tmp_path / "out"),
        "batch_size": 8, "micro_batch_size": 4, "lr": 3e-3, "max_length": 256, "val_fraction": 0.2,
        "max_steps": 12, "warmup_ratio": 0.1, "precision": "fp32", "log_every": 1, "seed": 0,
        **overrides,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _rows(out: Path, split: str) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["split"] == split]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_training_lowers_the_loss_and_changes_every_trainable_tensor(tmp_path, tiny_encoder_dir, capsys):
    config = _config(tmp_path, tiny_encoder_dir, max_steps=16)
    spec = {"source": str(tmp_path / "pairs.jsonl"), "objective": "helpfulness", "labeler": "human"}
    assert main(["train", "--config", str(config), "--no-progress", "--train_data", json.dumps([spec])]) == 0
    out = tmp_path / "out"
    train_rows = _rows(out, "train")
    assert len(train_rows) == 16
    first, last = (sum(r["loss"] for r in rows) / 4 for rows in (train_rows[:4], train_rows[-4:]))
    assert last < 0.5 * first
    result = json.loads((out / "train_result.json").read_text())
    assert result["validation"]["accuracy"] > 0.9
    assert set(result["validation"]["by_language"]) == {"en", "ja", "ko"}
    # Per language/objective/labeler beside the length rules: here every chosen answer is the longer
    # one, so "longer wins" is perfect and the model, however good, is flagged as not above it.
    groups = result["validation"]["by_group"]
    assert set(groups) == {f"{lang}/helpfulness/human" for lang in ("en", "ja", "ko")}
    for g in groups.values():
        assert g["vs_length"]["longer_wins"] == 1.0 and g["vs_length"]["shorter_wins"] == 0.0
        assert g["vs_length"]["baseline"] == "longer wins" and not g["vs_length"]["beats"]
        # and no pair where the chosen answer is the shorter one to show more than length with
        assert g["length_bias"]["n_chosen_longer"] == g["n"] and g["length_bias"]["n_chosen_shorter"] == 0
        assert g["length_bias"]["acc_chosen_longer"] == g["accuracy"]
        assert g["prompts"] == g["n"]  # each synthetic pair has a prompt of its own: resampled alone
    printed = capsys.readouterr().out
    assert "| ko/helpfulness/human |" in printed and "† not above the better length baseline" in printed
    ko = next(line for line in printed.splitlines() if line.startswith("| ko/helpfulness/human |"))
    n_ko = groups["ko/helpfulness/human"]["n"]
    assert ko.startswith(f"| ko/helpfulness/human | {n_ko} | {n_ko} | "), ko
    assert "intervals: 95% bootstrap over whole prompts" in printed
    assert ko.endswith(f"| {groups['ko/helpfulness/human']['accuracy']:.3f} ({n_ko}) | – |"), ko
    # The probe suite ran on the saved model in its three languages.
    assert "probe suite" in printed and "| refusal |" in printed
    probes = json.loads((out / "probes.json").read_text())
    assert set(probes["table"]["refusal"]) == {"en", "ja", "ko"}
    assert 0 <= result["padding_fraction"] < 1 and result["tokens_per_second"] > 0

    before, after = _weights(tiny_encoder_dir), _weights(out)
    assert set(before) <= set(after)
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert unchanged == []
    manifest = json.loads((out / "rewardsmith.json").read_text())
    assert manifest["max_length"] == 256 and manifest["score_std"] > 0
    assert (out / "tensorboard").is_dir() and any((out / "tensorboard").iterdir())
    assert (out / "checkpoints" / "step-16").is_dir()


def test_an_existing_run_is_neither_overwritten_nor_resumed_with_other_settings(tmp_path, tiny_encoder_dir, capsys):
    config = _config(tmp_path, tiny_encoder_dir, max_steps=2)
    assert main(["train", "--config", str(config), "--no-progress", "--no-probes"]) == 0
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--no-progress", "--no-probes"]) == 2
    assert "already holds checkpoints; pass --resume" in capsys.readouterr().err
    assert main(["train", "--config", str(config), "--resume", "--lr", "1e-4", "--no-progress", "--no-probes"]) == 2
    assert "different config (lr changed)" in capsys.readouterr().err


def test_frozen_embeddings_do_not_move(tmp_path, tiny_encoder_dir):
    config = _config(tmp_path, tiny_encoder_dir, freeze_embeddings=True, max_steps=4)
    assert main(["train", "--config", str(config), "--no-progress", "--no-probes"]) == 0
    before, after = _weights(tiny_encoder_dir), _weights(tmp_path / "out")
    key = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(before[key], after[key])
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])


def test_head_lr_moves_the_new_head_faster_than_the_backbone(tmp_path, tiny_encoder_dir):
    from rewardsmith.train.loop import is_head_parameter

    assert is_head_parameter("classifier.weight") and is_head_parameter("bert.pooler.dense.bias")
    assert is_head_parameter("base_model.model.score.modules_to_save.default.weight")
    assert not is_head_parameter("bert.encoder.layer.0.attention.self.query.weight")

    def change(run: str, **overrides) -> tuple[float, float]:
        (tmp_path / run).mkdir()
        config = _config(tmp_path / run, tiny_encoder_dir, lr=1e-5, max_steps=3, warmup_ratio=0.0, **overrides)
        assert main(["train", "--config", str(config), "--no-progress", "--no-probes"]) == 0
        before, after = _weights(tiny_encoder_dir), _weights(tmp_path / run / "out")
        head = (after["classifier.weight"] - before["classifier.weight"]).abs().max().item()
        key = "bert.encoder.layer.0.attention.self.query.weight"
        return head, (after[key] - before[key]).abs().max().item()

    same_head, same_body = change("same")
    fast_head, fast_body = change("fast", head_lr=1e-3)
    # Adam moves each weight by about lr per step, so 100x the rate is about 100x the change.
    assert fast_head > 30 * same_head
    assert fast_body == pytest.approx(same_body, rel=0.5)


def test_length_control_fits_a_length_term_per_group_that_the_saved_model_leaves_out(tmp_path, tiny_encoder_dir,
                                                                                      capsys):
    # Every synthetic chosen answer is the longer one: each group's length term starts at what
    # length alone fits (large: it always wins), keeps learning, and only the reward model is saved,
    # so scoring (and every other tool) sees the reward alone.
    from rewardsmith.train.loop import fit_length_coef

    config = _config(tmp_path, tiny_encoder_dir, max_steps=12, length_control=True)
    assert main(["train", "--config", str(config), "--no-progress", "--no-probes"]) == 0
    out = tmp_path / "out"
    rows = _rows(out, "train")
    groups = [f"{lang}/unknown/unknown" for lang in ("en", "ja", "ko")]
    for group in groups:
        betas = [r[f"length_coef/{group}"] for r in rows]
        assert betas[0] > 1.0  # fitted before the first step, not learnt from 0
        assert betas[-1] != betas[0]  # and trained with the reward
    result = json.loads((out / "train_result.json").read_text())
    assert sorted(result["validation"]["length_coef"]) == groups
    assert not any("length_coef" in k for k in _weights(out))
    assert "length control: the loss's length term per group" in capsys.readouterr().out
    # The fit itself: Bradley-Terry on length alone, against numbers worked by hand. With x = +1 in 3
    # pairs and -1 in 1, sum log sigmoid(beta x) is largest at beta = log 3 (no ridge).
    assert fit_length_coef([1.0, 1.0, 1.0, -1.0], l2=0.0) == pytest.approx(math.log(3), rel=1e-9)
    assert 0 < fit_length_coef([1.0] * 50, l2=1.0) < 10  # separable: finite only through the ridge


def test_lora_on_a_decoder_without_pad_token_saves_adapter_and_merged_model(tmp_path, tiny_decoder_dir):
    from peft import PeftModel

    from rewardsmith.models import collate, encode, init_reward_model, load_reward_model, reward_forward

    config = _config(tmp_path, tiny_decoder_dir, lora={"r": 4, "alpha": 8, "dropout": 0.0}, max_steps=10)
    assert main(["train", "--config", str(config), "--no-progress", "--no-probes"]) == 0
    out = tmp_path / "out"
    adapter = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert any("lora_A" in k for k in adapter) and any("score" in k for k in adapter)

    merged = load_reward_model(out)
    base = init_reward_model(tiny_decoder_dir, max_length=256)
    with_adapter = PeftModel.from_pretrained(base.model, str(out / "adapter")).eval()
    conv = [{"role": "user", "content": "How do I boil an egg?"}]
    ids = [encode(merged.tokenizer, merged.manifest, conv, r) for r in ("Sure, step by step.", "No.")]
    batch = collate(ids, merged.pad_id)
    with torch.inference_mode():
        a = reward_forward(merged.model, **batch)
        b = reward_forward(with_adapter.get_base_model(), **batch)
    assert torch.allclose(a, b, atol=1e-4), (a, b)
    assert json.loads((out / "train_result.json").read_text())["validation"]["accuracy"] > 0.8


def test_lr_sweep_keeps_the_best_and_writes_a_table(tmp_path, tiny_encoder_dir, capsys):
    config = _config(tmp_path, tiny_encoder_dir, max_steps=6)
    assert main(["train", "--config", str(config), "--lr", "1e-9,3e-3", "--no-progress", "--no-probes"]) == 0
    out = tmp_path / "out"
    sweep = json.loads((out / "sweep.json").read_text())
    assert [r["lr"] for r in sweep["runs"]] == [1e-9, 3e-3]
    assert sweep["best"]["lr"] == 3e-3
    assert (out / "best").resolve() == (out / "lr-0.003").resolve()
    assert "**best**" in (out / "sweep.md").read_text() and "| 0.003 **best**" in capsys.readouterr().out


def test_user_errors_are_one_line(tmp_path, tiny_encoder_dir, capsys):
    config = _config(tmp_path, tiny_encoder_dir)
    assert main(["train", "--config", str(config), "--batch_size", "7"]) == 2
    assert "batch_size: 7 is not a multiple of micro_batch_size 4" in capsys.readouterr().err


def _run(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "rewardsmith", "train", *args, "--no-progress", "--no-probes"], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, tiny_encoder_dir):
    """SIGKILL a real run after its first checkpoint; --resume must end where an uninterrupted run ends."""
    # 3 epochs of 23 steps, capped at 40: the resumed run also crosses an epoch boundary.
    config = _config(tmp_path, tiny_encoder_dir, epochs=3, max_steps=40, checkpoint_every=4, keep_checkpoints=2)
    reference = tmp_path / "reference"
    ref = _run(["--config", str(config), "--output_dir", str(reference)], _env())
    victim_out = tmp_path / "out"
    victim = _run(["--config", str(config)], _env())
    first = victim_out / "checkpoints" / "step-4"
    deadline = time.time() + 600
    while not (first / "trainer_state.json").exists():
        assert victim.poll() is None, victim.stdout.read()
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (victim_out / "train_result.json").exists(), "the run finished before it was killed"
    killed_at = json.loads((max((victim_out / "checkpoints").glob("step-*"),
                                key=lambda p: int(p.name[5:])) / "trainer_state.json").read_text())["step"]
    assert killed_at < 40

    resumed = _run(["--config", str(config), "--resume"], _env())
    log = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, log
    assert f"(step {killed_at} of 40)" in log, log
    assert ref.wait(timeout=600) == 0, ref.stdout.read()
    a, b = _weights(reference), _weights(victim_out)
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-6), key
    assert not all(torch.equal(a[k], _weights(tiny_encoder_dir)[k]) for k in _weights(tiny_encoder_dir))
    steps = [r["step"] for r in _rows(victim_out, "train")]
    assert steps == list(range(1, 41))  # rows after the checkpoint were dropped and logged again


def test_two_processes_on_gloo_match_one_process(tmp_path, tiny_encoder_dir):
    """accelerate launch --num_processes 2 (CPU, gloo) = 1 process at the same global batch."""
    config = _config(tmp_path, tiny_encoder_dir, max_steps=8, batch_size=8, micro_batch_size=2)
    one = _run(["--config", str(config), "--output_dir", str(tmp_path / "one")], _env())
    # On a CPU-only machine `--multi_gpu` is accelerate's switch for "several processes" (torchrun);
    # the trainer then picks gloo (see loop.train). `--cpu` alone would start one process.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
              "-m", "rewardsmith", "train", "--config", str(config), "--output_dir", str(tmp_path / "two"),
              "--no-progress", "--no-probes"]
    two = run_distributed(launch, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stdout + two.stderr
    assert "2 processes x 2 micro-batches" in two.stdout + two.stderr
    log = one.communicate(timeout=900)[0]
    assert one.returncode == 0, log
    assert "1 processes x 4 micro-batches" in log
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    # The score-head bias cancels in r_c - r_r and attention key biases cancel in the softmax: their
    # true gradient is 0, so Adam turns float rounding noise into lr-sized steps. Compare the rest.
    null_gradient = {k for k in a if k == "classifier.bias" or k.endswith("attention.self.key.bias")}
    for key in set(a) - null_gradient:
        assert torch.allclose(a[key], b[key], rtol=0, atol=2e-5), key
    ra = json.loads((tmp_path / "one" / "train_result.json").read_text())["validation"]
    rb = json.loads((tmp_path / "two" / "train_result.json").read_text())["validation"]
    assert ra["n"] == rb["n"] and abs(ra["loss"] - rb["loss"]) < 1e-4


def test_runs_with_different_precisions_in_one_process(tmp_path, tiny_encoder_dir):
    """accelerate's state is a process-wide singleton: a bf16 run followed by an fp32 run in the same
    process (a sweep, a notebook, this test suite) must not fail on the second Accelerator."""
    for precision in ("bf16", "fp32"):
        (tmp_path / precision).mkdir()
        config = _config(tmp_path / precision, tiny_encoder_dir, max_steps=2, precision=precision)
        assert main(["train", "--config", str(config), "--no-progress", "--no-probes"]) == 0
        assert (tmp_path / precision / "out" / "rewardsmith.json").exists()


def test_the_command_trains_under_jemalloc_when_it_is_installed(tmp_path, tiny_encoder_dir):
    """The console entry point re-runs `train` under jemalloc (rewardsmith.allocator) when the library
    is on the machine, and says which malloc it runs on; REWARDSMITH_ALLOCATOR=system keeps glibc's."""
    from rewardsmith.allocator import find_jemalloc

    config = _config(tmp_path, tiny_encoder_dir, max_steps=2)
    env = {k: v for k, v in _env().items() if k not in ("LD_PRELOAD", "REWARDSMITH_ALLOCATOR", "MALLOC_CONF")}
    log = _run(["--config", str(config)], env).communicate(timeout=600)[0]
    library = find_jemalloc()
    expected = (f"allocator: jemalloc ({library}, MALLOC_CONF=background_thread:true)" if library
                else "allocator: glibc malloc (install libjemalloc2")
    assert expected in log, log
    log = _run(["--config", str(config), "--output_dir", str(tmp_path / "system")],
               dict(env, REWARDSMITH_ALLOCATOR="system")).communicate(timeout=600)[0]
    assert "allocator: glibc malloc" in log and "allocator: jemalloc" not in log, log
