"""The preference-data layer: one record (`PreferencePair`), readers for every format, filters, presets.

    from rewardsmith.data import load_pairs
    result = load_pairs("../shared/data/hh-rlhf-test")
    result.pairs[0].prompt, result.pairs[0].chosen, result.report.render()
"""

from rewardsmith.data.load import LoadResult, load_pairs
from rewardsmith.data.presets import PRESETS, get_preset
from rewardsmith.data.record import Message, PreferencePair
from rewardsmith.data.report import DropReport

__all__ = ["PRESETS", "get_preset", "DropReport", "LoadResult", "Message", "PreferencePair", "load_pairs"]
