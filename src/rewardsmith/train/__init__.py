"""Training: preference pairs -> a reward model folder (see loop.py, read top to bottom).

    from rewardsmith.train import load_config, train
    result = train(load_config("configs/e5-small-cpu.yaml"))

Importing this package imports no torch; `train` and `sweep` do, when called.
"""

from rewardsmith.train.config import DataSpec, LoraSpec, TrainConfig, load_config, parse_overrides


def train(config, **kwargs):
    """See `rewardsmith.train.loop.train`."""
    from rewardsmith.train.loop import train as _train

    return _train(config, **kwargs)


__all__ = ["DataSpec", "LoraSpec", "TrainConfig", "load_config", "parse_overrides", "train"]
