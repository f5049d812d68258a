"""`rewardsmith train --config FILE [--key value ...]`: train a reward model from a YAML recipe."""

from __future__ import annotations

import argparse
import dataclasses

EPILOG = """\
examples:
  rewardsmith train --config configs/e5-small-cpu.yaml
  rewardsmith train --config configs/e5-small-cpu.yaml --max_steps 50 --output_dir runs/try
  rewardsmith train --config configs/ca-reward-3b-ja.yaml --lr 8e-7,1e-6,2.5e-6,5e-6   # the card's sweep
  rewardsmith train --config configs/e5-small-cpu.yaml --resume                          # after an interruption
  rewardsmith train --config configs/e5-small-cpu.yaml --lora.r 8                         # LoRA, rank 8
  accelerate launch --multi_gpu --num_processes 2 -m rewardsmith train --config configs/e5-small-cpu.yaml
                     # 2 processes (gloo on CPU, DDP on GPUs); FSDP/DeepSpeed: see docs/training.md

Every setting of the config file can be overridden with --name value (values are read as YAML:
--train_data '[a.jsonl, b.jsonl]'). Output: OUTPUT_DIR holds the model (an ordinary Hugging Face
folder + rewardsmith.json), checkpoints/, metrics.jsonl, tensorboard/ and train_result.json.
"""


def register(subparsers) -> None:
    from rewardsmith.train.config import LoraSpec, TrainConfig

    p = subparsers.add_parser(
        "train", help="train a reward model (Bradley-Terry) from a YAML config",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML recipe (see configs/)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in output_dir (same data order, optimizer, RNG)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs and metrics.jsonl only)")
    p.add_argument("--no-probes", action="store_true",
                   help="skip the probe suite (`rewardsmith check`) run on the trained model at the end")
    group = p.add_argument_group("config overrides (any setting of the YAML file)")
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    names += [f"lora.{f.name}" for f in dataclasses.fields(LoraSpec)]
    for name in names:
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        group.add_argument(*flags, dest=f"set:{name}", metavar="VALUE", default=argparse.SUPPRESS,
                           help=argparse.SUPPRESS if name.startswith("lora.") or name not in _SHOWN else None)
    p.set_defaults(func=run)


_SHOWN = {"model", "train_data", "val_data", "output_dir", "lr", "max_length", "batch_size",
          "micro_batch_size", "epochs", "max_steps", "precision", "seed"}


def run(args) -> int:
    import logging

    import yaml

    from rewardsmith.train import is_main_process
    from rewardsmith.train.config import load_config
    from rewardsmith.train.report import summary

    overrides = {}
    for key, value in vars(args).items():
        if key.startswith("set:"):
            try:
                overrides[key[4:]] = yaml.safe_load(value)
            except yaml.YAMLError:
                overrides[key[4:]] = value
    config = load_config(args.config, overrides)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("accelerate", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if config.is_sweep:
        from rewardsmith.train.sweep import sweep, table

        rows, best = sweep(config, resume=args.resume, progress=not args.no_progress)
        if is_main_process():
            print(table(rows, best))
            print(f"best: lr {best['lr']:g} -> {best['output_dir']} (also {config.output_dir}/best)")
        return 0
    from rewardsmith.train.loop import train

    result = train(config, resume=args.resume, progress=not args.no_progress)
    if is_main_process():  # under `accelerate launch` every process gets the same result: one table
        print(summary(result))
        if not args.no_probes:
            print(probe_summary(result, config.precision))
    return 0


def probe_summary(result, precision: str) -> str:
    """The probe suite on the saved model, in the validation's languages (of ja/ko/en); also
    written to OUTPUT_DIR/probes.json."""
    import json

    from rewardsmith.evaluate.probes import LANGUAGES, check_model

    languages = tuple(lang for lang in LANGUAGES if lang in result.validation["by_language"])
    if not languages:
        return "probes: none in the model's languages (ja, ko, en)"
    probes = check_model(str(result.output_dir), languages, precision=precision)
    (result.output_dir / "probes.json").write_text(json.dumps(probes.to_dict(), ensure_ascii=False, indent=1),
                                                    encoding="utf-8")
    return ("probe suite (better answer scored higher / probes; `rewardsmith check` for details):\n"
            + probes.markdown())
