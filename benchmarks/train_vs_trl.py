"""rewardsmith's training loop vs TRL's RewardTrainer: same model, data, steps, batch and precision.

Not a test: a measurement. Each trainer runs in its own subprocess (so peak memory is its own),
on the same encoded pairs (rewardsmith's input format, handed to TRL as `chosen_ids` /
`rejected_ids`), the same trainable parameters (frozen embeddings + bottom layers, as the
CPU recipe), the same AdamW parameter groups (head_lr included), lr schedule and bf16 autocast.
Both final models are scored on the same held-out pairs by the same function. Each runs on the
malloc its own command would: rewardsmith under jemalloc when it is installed (rewardsmith.allocator),
TRL on the system's (--trl-jemalloc: jemalloc too). Printed: the malloc, training tokens/s (real
tokens, padding excluded), peak RSS, share of computed tokens that were padding, held-out
accuracy, and ratios.

    python benchmarks/train_vs_trl.py --steps 30            # a few minutes on 2 idle cores
    python benchmarks/train_vs_trl.py --steps 275           # the small recipe's whole epoch
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_line

ROOT = Path(__file__).resolve().parents[1]


def _config(args, out: Path):
    from rewardsmith.train.config import load_config

    return load_config(args.config, {"output_dir": str(out), "max_steps": args.steps, "checkpoint_every": 0,
                                     "eval_every": 0, "log_every": 0})


def _held_out_correct(model, pairs, pad_id: int) -> list[int]:
    """Same function for both trainers: 1 per held-out pair with r_chosen > r_rejected, in pair
    order (bf16 autocast), so the two trainers can be compared pair by pair."""
    import torch

    from rewardsmith.models import reward_forward
    from rewardsmith.train.data import make_batch

    model.eval()
    correct = [0] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: pairs[i].length)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for s in range(0, len(order), 32):
            idx = order[s:s + 32]
            batch = make_batch([pairs[i] for i in idx], pad_id)
            chosen, rejected = reward_forward(model, batch["input_ids"], batch["attention_mask"]).reshape(2, -1)
            for i, won in zip(idx, (chosen > rejected).tolist()):
                correct[i] = int(won)
    return correct


def _paired_difference(a: list[int], b: list[int], resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Accuracy of a minus accuracy of b on the same pairs, with a seeded 95% paired bootstrap interval."""
    import numpy as np

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def run_rewardsmith(args, out: Path) -> dict:
    from rewardsmith.models import load_reward_model
    from rewardsmith.train.loop import load_data, train

    config = _config(args, out)
    result = train(config, progress=False)
    rm = load_reward_model(out)
    _, val, _, _ = load_data(config, rm.tokenizer, rm.manifest)
    return {"tokens_per_second": result.tokens_per_second, "padding_fraction": result.padding_fraction,
            "train_seconds": result.train_seconds, "correct": _held_out_correct(rm.model, val, rm.pad_id)}


def run_trl(args, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from rewardsmith.models import init_reward_model
    from rewardsmith.train.loop import _prepare_for_training, build_optimizer, load_data

    config = _config(args, out)
    torch.manual_seed(config.seed)
    rm = init_reward_model(config.model, max_length=config.max_length, prompt_tokens=config.prompt_tokens)
    train_pairs, val, _, _ = load_data(config, rm.tokenizer, rm.manifest)
    model = rm.model.float()
    _prepare_for_training(model, config)  # the same frozen parameters and no dropout
    dataset = Dataset.from_list([{"chosen_ids": p.chosen, "rejected_ids": p.rejected} for p in train_pairs])

    counts = {"real": 0, "computed": 0}

    class CountingTrainer(RewardTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                counts["real"] += int(inputs["attention_mask"].sum())
                counts["computed"] += int(inputs["attention_mask"].numel())
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    trl_args = RewardConfig(
        output_dir=str(out), per_device_train_batch_size=config.micro_batch_size,
        gradient_accumulation_steps=config.batch_size // config.micro_batch_size, max_steps=args.steps,
        learning_rate=config.lr[0], lr_scheduler_type="linear", warmup_steps=int(config.warmup_ratio * args.steps),
        adam_beta1=config.adam_betas[0], adam_beta2=config.adam_betas[1], weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm or 0.0, bf16=True, use_cpu=True, max_length=None,
        report_to="none", save_strategy="no", logging_steps=10, seed=config.seed, disable_dropout=True,
        dataloader_num_workers=0)
    # The same AdamW parameter groups (the head at head_lr, no decay on biases and norms); the
    # Trainer adds its linear warm-up/decay schedule on top, as rewardsmith does.
    optimizer = build_optimizer(model, config, config.lr[0])
    trainer = CountingTrainer(model=model, args=trl_args, train_dataset=dataset, processing_class=rm.tokenizer,
                              optimizers=(optimizer, None))
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    return {"tokens_per_second": counts["real"] / seconds, "padding_fraction": 1 - counts["real"] / counts["computed"],
            "train_seconds": seconds, "correct": _held_out_correct(model, val, rm.pad_id)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "e5-small-cpu.yaml"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--trl-jemalloc", action="store_true",
                        help="run TRL under jemalloc too (by default each runs as its command would: rewardsmith "
                             "under jemalloc when it is installed, TRL on the system's malloc)")
    parser.add_argument("--only", choices=["rewardsmith", "trl"], help=argparse.SUPPRESS)  # the child mode
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from rewardsmith import allocator

    if args.only:
        run = run_rewardsmith if args.only == "rewardsmith" else run_trl
        result = run(args, Path(args.out))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["malloc"] = allocator.active().split(" (")[0]
        print("RESULT " + json.dumps(result))
        return

    print(machine_line())
    results = {}
    # The malloc `rewardsmith train` itself would run on (rewardsmith.allocator): jemalloc when installed.
    jemalloc = allocator.plan(["train"], os.environ, sys.platform, allocator.find_jemalloc()) or dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("rewardsmith", "trl"):
            cmd = [sys.executable, __file__, "--only", name, "--config", args.config, "--steps", str(args.steps),
                   "--out", str(Path(tmp) / name)]
            env = jemalloc if name == "rewardsmith" or args.trl_jemalloc else None
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            results[name] = json.loads(line[-1][7:])
    rs, trl = results["rewardsmith"], results["trl"]
    for r in results.values():
        r["accuracy"] = sum(r["correct"]) / len(r["correct"])
    print(f"{args.steps} steps of {Path(args.config).name}, held-out pairs: {len(rs['correct'])}")
    print("| trainer | malloc | tokens/s | peak RSS MB | padding | held-out accuracy | train s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['malloc']} | {r['tokens_per_second']:.0f} | {r['peak_rss_mb']:.0f} | {100 * r['padding_fraction']:.1f}% "
              f"| {r['accuracy']:.3f} | {r['train_seconds']:.0f} |")
    print(f"ratios rewardsmith/TRL: tokens/s {rs['tokens_per_second'] / trl['tokens_per_second']:.2f}x, "
          f"peak memory {rs['peak_rss_mb'] / trl['peak_rss_mb']:.2f}x, "
          f"padding {rs['padding_fraction'] / max(trl['padding_fraction'], 1e-9):.2f}x, "
          f"accuracy {rs['accuracy'] - trl['accuracy']:+.3f}")
    diff, low, high = _paired_difference(rs["correct"], trl["correct"])
    print(f"accuracy difference rewardsmith - TRL on the same pairs: {diff:+.3f} (95% paired bootstrap {low:+.3f} to {high:+.3f})")


if __name__ == "__main__":
    main()
