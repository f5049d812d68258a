"""Training with a shared prefix: each pair's conversation runs once, with the same loss and gradients."""

import pytest
import torch

from rewardsmith.loss import bradley_terry_loss
from rewardsmith.models import init_reward_model
from rewardsmith.train.data import EncodedPair, make_batch
from rewardsmith.train.loop import RewardModule
from tests.ports import free_port, run_distributed
from tests.tiny_models import tiny_decoder


def test_shared_layout_splits_each_pair_at_its_common_start():
    pairs = [EncodedPair([1, 2, 3, 4, 5], [1, 2, 3, 9], 0.0, "en"), EncodedPair([1, 7, 8], [1, 7, 6, 6], 0.0, "ja")]
    batch = make_batch(pairs, pad_id=0, share_prefix=True, min_saving=1)
    assert batch["prefix_ids"].tolist() == [[1, 2, 3], [0, 1, 7]]  # left-padded
    assert batch["prefix_mask"].tolist() == [[1, 1, 1], [0, 1, 1]]
    assert batch["input_ids"].tolist() == [[4, 5], [8, 0], [9, 0], [6, 6]]  # chosen, then rejected
    assert batch["tokens"] == 16 and batch["computed"] == 11 and batch["padded"] == 6 + 8
    assert "prefix_ids" not in make_batch(pairs, pad_id=0, share_prefix=True)  # 1 token saved per pair < 32


def test_no_shared_start_or_too_small_a_saving_keeps_the_whole_layout():
    for pair, min_saving in ((EncodedPair([1, 2, 3], [4, 5], 0.0, "en"), 1),  # nothing in common
                             (EncodedPair([1, 2], [1, 2, 3, 4, 5, 6, 7, 8], 0.0, "en"), 2)):  # saves 1 token
        batch = make_batch([pair], pad_id=0, share_prefix=True, min_saving=min_saving)
        assert "prefix_ids" not in batch and batch["computed"] == batch["tokens"]


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def decoder(request, tmp_path_factory):
    return tiny_decoder(tmp_path_factory.mktemp(request.param), seed=5, arch=request.param)


def _loss_and_grads(path, pairs, share):
    torch.manual_seed(0)
    rm = init_reward_model(path, max_length=256)
    module = RewardModule(rm.model).train()
    batch = make_batch(pairs, rm.pad_id, share_prefix=share, min_saving=1)
    assert ("prefix_ids" in batch) == share
    extra = {k: batch[k] for k in ("prefix_ids", "prefix_mask") if k in batch}
    rewards = module(batch["input_ids"], batch["attention_mask"], **extra)
    loss = bradley_terry_loss(rewards)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return rewards.detach(), grads


def test_shared_prefix_gives_the_same_rewards_and_gradients(decoder):
    g = torch.Generator().manual_seed(1)
    pairs = []
    for n_prompt, n_c, n_r in [(20, 5, 9), (13, 7, 2), (30, 1, 4)]:  # 13 + 7 > the 8-token sliding window
        prompt = torch.randint(5, 200, (n_prompt,), generator=g).tolist()
        pairs.append(EncodedPair(prompt + torch.randint(5, 200, (n_c,), generator=g).tolist(),
                                 prompt + torch.randint(5, 200, (n_r,), generator=g).tolist(), 0.0, "en"))
    whole_r, whole_g = _loss_and_grads(decoder, pairs, share=False)
    shared_r, shared_g = _loss_and_grads(decoder, pairs, share=True)
    assert torch.allclose(whole_r, shared_r, atol=1e-5)
    assert whole_g.keys() == shared_g.keys() and len(whole_g) > 5
    for name, grad in whole_g.items():
        assert torch.allclose(grad, shared_g[name], atol=1e-6, rtol=1e-4), name
    assert any(grad.abs().max() > 0 for name, grad in whole_g.items() if "embed" in name)  # the prefix got gradient


def test_training_a_decoder_with_and_without_sharing_ends_at_the_same_weights(tmp_path, tiny_decoder_dir,
                                                                              monkeypatch):
    import json

    import yaml
    from safetensors.torch import load_file

    import rewardsmith.models.prefix as prefix
    from rewardsmith.cli import main

    data = _prefix_rows(tmp_path / "pairs.jsonl")
    calls = []
    real = prefix.run_prefixes
    monkeypatch.setattr(prefix, "run_prefixes", lambda *a, **k: calls.append(1) or real(*a, **k))
    weights, losses = {}, {}
    for share in (False, True):
        config = {"model": str(tiny_decoder_dir), "train_data": [str(data)], "output_dir": str(tmp_path / str(share)),
                  "batch_size": 8, "micro_batch_size": 4, "lr": 3e-3, "max_length": 512, "val_fraction": 0.2,
                  "max_steps": 4, "precision": "fp32", "seed": 0, "share_prefix": share, "log_every": 1,
                  "group_by_length": False,  # the same micro-batches both ways (grouping keys differ)
                  # Adam divides by sqrt(v) + eps: at the default 1e-8 a gradient element near zero turns
                  # float rounding, which differs between the two layouts and between CPUs' kernels, into
                  # a step of up to lr (4.7e-5 apart on a Zen 4 EPYC, > 1e-4 on CI). 1e-5 bounds it.
                  "adam_eps": 1e-5}
        path = tmp_path / f"{share}.yaml"
        path.write_text(yaml.safe_dump(config))
        assert main(["train", "--config", str(path), "--no-progress", "--no-probes"]) == 0
        weights[share] = load_file(str(tmp_path / str(share) / "model.safetensors"))
        rows = [json.loads(line) for line in (tmp_path / str(share) / "metrics.jsonl").read_text().splitlines()]
        losses[share] = [r["loss"] for r in rows if r["split"] == "train"]
        assert bool(calls) == share  # the loop took the shared layout only when asked
    assert len(losses[True]) == 4 and torch.allclose(torch.tensor(losses[False]), torch.tensor(losses[True]), atol=1e-5)
    for name, w in weights[False].items():
        assert torch.allclose(w, weights[True][name], atol=1e-4), name
    start = load_file(str(tiny_decoder_dir / "model.safetensors"))
    assert any((weights[True][k] - v).abs().max() > 1e-3 for k, v in start.items()
               if k in weights[True] and weights[True][k].shape == v.shape)  # it trained
    assert len(calls) > 4 * 2  # 4 steps x 2 micro-batches, then the validation batches


def test_a_run_recorded_before_the_setting_existed_resumes(tmp_path):
    import json

    from rewardsmith.errors import RewardsmithError
    from rewardsmith.train.config import DataSpec, TrainConfig
    from rewardsmith.train.loop import _check_resume

    config = TrainConfig(model="m", train_data=(DataSpec(source="d.jsonl"),), output_dir=str(tmp_path))
    saved = json.loads(json.dumps(config.to_dict()))
    del saved["share_prefix"]  # written by an older rewardsmith: it ran with the default
    (tmp_path / "train_config.json").write_text(json.dumps(saved))
    _check_resume(tmp_path, config, resume=True, write=False)
    saved["lr"] = [1e-3]
    (tmp_path / "train_config.json").write_text(json.dumps(saved))
    with pytest.raises(RewardsmithError, match="lr changed"):
        _check_resume(tmp_path, config, resume=True, write=False)


def test_two_length_grouping_keeps_both_paddings_small():
    import random

    from rewardsmith.train.data import micro_batches

    rng = random.Random(0)
    lengths = [(rng.randint(10, 400), rng.randint(5, 300)) for _ in range(2048)]
    batches = micro_batches(lengths, 4, seed=0, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(2048)) and all(len(b) == 4 for b in batches)
    assert batches == micro_batches(lengths, 4, seed=0, epoch=0)

    def padded(batches):
        return sum(len(b) * (max(lengths[i][0] for i in b) + 2 * max(lengths[i][1] for i in b)) for b in batches)

    by_prefix = micro_batches([p for p, _ in lengths], 4, seed=0, epoch=0)
    by_total = micro_batches([p + s for p, s in lengths], 4, seed=0, epoch=0)
    assert padded(batches) < 0.8 * min(padded(by_prefix), padded(by_total))


def test_validation_with_a_shared_prefix_gives_the_same_rewards_in_pair_order(decoder):
    from accelerate import Accelerator

    from rewardsmith.train.loop import evaluate_pairs

    g = torch.Generator().manual_seed(2)
    pairs = []
    for i in range(11):  # prompts and responses of mixed lengths, so the two sorts differ
        prompt = torch.randint(5, 200, (int(torch.randint(3, 60, (1,), generator=g)),), generator=g).tolist()
        c, r = (torch.randint(5, 200, (int(torch.randint(1, 20, (1,), generator=g)),), generator=g).tolist()
                for _ in range(2))
        pairs.append(EncodedPair(prompt + c, prompt + r, 0.0, "ja" if i % 3 else "ko"))
    rm = init_reward_model(decoder, max_length=256)
    module = RewardModule(rm.model)
    accelerator = Accelerator(cpu=True, mixed_precision="no")  # bf16 rewards differ in the third decimal
    whole, whole_r = evaluate_pairs(module, pairs, accelerator, rm.pad_id, "right", 4, return_rewards=True)
    shared, shared_r = evaluate_pairs(module, pairs, accelerator, rm.pad_id, "right", 4, return_rewards=True,
                                      share_prefix=True)
    assert torch.allclose(torch.tensor(whole_r), torch.tensor(shared_r), atol=1e-5)
    assert whole["accuracy"] == shared["accuracy"] and whole["by_language"].keys() == {"ja", "ko"}
    # Pair order survives the sort: pair 0's chosen reward is what scoring pair 0 alone gives.
    one, one_r = evaluate_pairs(module, pairs[:1], accelerator, rm.pad_id, "right", 4, return_rewards=True)
    assert abs(one_r[0] - shared_r[0]) < 1e-5 and abs(one_r[1] - shared_r[len(pairs)]) < 1e-5


def test_validation_sorts_a_shared_layout_by_both_lengths():
    import random

    from rewardsmith.train.data import length_sorted

    rng = random.Random(1)
    lengths = [(rng.randint(10, 400), rng.randint(5, 300)) for _ in range(1000)]
    order = length_sorted(list(range(1000)), lengths, 8)
    assert sorted(order) == list(range(1000))

    def padded(order):
        batches = [order[s:s + 8] for s in range(0, len(order), 8)]
        return sum(len(b) * (max(lengths[i][0] for i in b) + 2 * max(lengths[i][1] for i in b)) for b in batches)

    by_total = sorted(range(1000), key=lambda i: sum(lengths[i]))
    assert padded(order) < 0.8 * padded(by_total)
    assert length_sorted([2, 0, 1], [5, 9, 1], 2) == [1, 0, 2]  # plain lengths: longest first


def _prefix_rows(path, n=48):
    import json

    rows = [{"prompt": [{"role": "user", "content": f"Question {i}: " + "please explain it slowly " * (8 + i % 5)}],
             "chosen": "Sure, here is a careful answer." if i % 2 else "Happy to help, step by step.",
             "rejected": "No.", "language": "en"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _env():
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0", PYTHONPATH=f"{root / 'src'}{os.pathsep}{root}")


def test_two_processes_on_gloo_train_a_shared_prefix_as_one_process(tmp_path, tiny_decoder_dir):
    """DDP: the backbone runs twice (prefixes, then responses) before one backward; gradients are
    all-reduced once, so 2 processes end at the 1-process weights."""
    import sys

    import yaml
    from safetensors.torch import load_file

    config = {"model": str(tiny_decoder_dir), "train_data": [str(_prefix_rows(tmp_path / "pairs.jsonl"))],
              "batch_size": 8, "micro_batch_size": 2, "lr": 3e-3, "max_length": 512, "val_fraction": 0.2,
              "max_steps": 4, "precision": "fp32", "seed": 0,  # share_prefix: the default
              "adam_eps": 1e-5}  # all-reduce sums in another order: bound Adam's step on near-zero gradients
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    logs = {}
    for world in (1, 2):
        launch = (["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no"] if world == 2 else [])
        run = run_distributed([sys.executable, *launch, "-m", "rewardsmith", "train", "--config", str(tmp_path / "c.yaml"),
                              "--output_dir", str(tmp_path / str(world)), "--no-progress"],
                             env=_env(), capture_output=True, text=True, timeout=900)
        logs[world] = run.stdout + run.stderr
        assert run.returncode == 0, logs[world]
        assert "share_prefix: each pair's shared conversation runs once" in logs[world]
    assert "2 processes x 2 micro-batches" in logs[2] and "1 processes x 4 micro-batches" in logs[1]
    assert logs[2].count("| held-out |") == 1  # one results table, not one per process
    one, two = (load_file(str(tmp_path / str(w) / "model.safetensors")) for w in (1, 2))
    for name, w in one.items():
        assert torch.allclose(w, two[name], rtol=0, atol=2e-5), name


def test_fsdp2_cannot_train_a_shared_prefix_so_the_trainer_detects_it(tiny_decoder_dir):
    """FSDP2 (fully_shard per layer, 2 gloo processes) trains the whole layout exactly, fails in
    backward on the shared one; shards_parameters names the wrapper, so the trainer falls back.
    If a torch release makes the shared layout train, this fails: let the trainer share again."""
    import json
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("fsdp2_shared_prefix.py")
    run = run_distributed([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(free_port()), str(script),
                          str(tiny_decoder_dir)], env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 2, run.stdout + run.stderr
    for r in results:
        assert r["detected"] == "FSDP" and r["unwrapped"] is None
        assert r["grads"] and r["whole_rewards"] < 1e-5 and r["whole_grads"] < 1e-6
        assert r["shared"].startswith("failed"), r["shared"]
