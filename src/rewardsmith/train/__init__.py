"""Training: preference pairs -> a reward model folder (see loop.py, read top to bottom).

    from rewardsmith.train import load_config, train
    result = train(load_config("configs/e5-small-cpu.yaml"))

Importing this package imports no torch; `train` and `sweep` do, when called.
"""

import os

from rewardsmith.train.config import DataSpec, LoraSpec, TrainConfig, load_config, parse_overrides


def is_main_process() -> bool:
    """True on rank 0 of an `accelerate launch` / torchrun job, and in a plain single process: the one
    that writes shared files and prints results every process computed alike."""
    return os.environ.get("RANK", "0") == "0"


def train(config, **kwargs):
    """See `rewardsmith.train.loop.train`."""
    from rewardsmith.train.loop import train as _train

    return _train(config, **kwargs)


__all__ = ["DataSpec", "LoraSpec", "TrainConfig", "is_main_process", "load_config", "parse_overrides", "train"]
