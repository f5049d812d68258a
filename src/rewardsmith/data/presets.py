"""Named presets: each reproduces one evaluation/training set as a model card describes it.

A preset is where the data lives (a Hugging Face id for online users, and the file pattern to
look for in a local copy), its format, split and the card's filters, in that order:

    load_pairs(preset="helpsteer3-ja")                            # from the hub
    load_pairs(preset="helpsteer3-ja", source="/data/HelpSteer3") # a local copy (folder or file)

`rewardsmith evaluate --list` prints PRESETS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardsmith.data import filters
from rewardsmith.data.filters import Filter
from rewardsmith.errors import lookup_name


def _subset_prefix(prefix: str) -> Filter:
    return filters._keep_if(f"subset is not {prefix}*", lambda p: (p.subset or "").startswith(prefix),
                            f"subset_startswith({prefix})")


@dataclass(frozen=True)
class Preset:
    """name: preset name; hub_id: `owner/name` or `owner/name:config` (None: no hub copy, pass a source);
    files: glob inside a local folder that selects the set's files; format/split: for the reader;
    filters: applied in order, each reports what it drops; card: where the filter is written down."""

    name: str
    description: str
    hub_id: str | None
    files: str | None
    format: str
    split: str | None = None
    filters: tuple[Filter, ...] = field(default=())
    card: str = ""
    expected: int | None = None  # pairs the card reports after its filters, when it says
    language: str | None = None  # the set's language: fills rows that do not say, drops rows in another
    source_name: str | None = None  # `source` of its pairs when the format does not name one
    objective: str | None = None  # what its labels judged, when the format does not say (data.objectives)
    labeler: str | None = None  # "human" | "llm-judge", likewise


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("helpsteer3-ja", "HelpSteer3 preference, Japanese, single-turn, no ties (train + validation)",
           "nvidia/HelpSteer3:preference", "**/preference/*.jsonl*", "helpsteer3", "train+validation",
           (filters.single_turn, filters.drop_ties),
           "cyberagent/ca-reward-3b-ja: language == japanese, len(context) == 1, overall_preference != 0", 283,
           language="ja"),
    *(Preset(f"helpsteer3-{lang}", f"HelpSteer3 preference, {name}, single-turn, no ties (train + validation)",
             "nvidia/HelpSteer3:preference", "**/preference/*.jsonl*", "helpsteer3", "train+validation",
             (filters.single_turn, filters.drop_ties),
             f"the Japanese card's HelpSteer3 filter applied to {name}: language == {name.lower()}, "
             "len(context) == 1, overall_preference != 0", language=lang)
      for lang, name in (("ko", "Korean"), ("en", "English"))),
    Preset("llm-jp-arena", "llm-jp chatbot arena, first turn, a clear winner",
           "llm-jp/llm-jp-chatbot-arena-conversations", "**/*.jsonl*", "arena", "train",
           (filters.turn_is(1), filters.drop_ties),
           "cyberagent/ca-reward-3b-ja: turn == 1, winner in {model_a, model_b}", 448,
           source_name="llm-jp-arena"),
    Preset("hh-rlhf-ko-helpful", "hh-rlhf-ko (Korean hh-rlhf), helpful subsets, test split",
           "heegyu/hh-rlhf-ko", "**/test.json*", "hh-rlhf-ko", "test", (_subset_prefix("helpful"),),
           "heegyu/ko-reward-model-helpful-roberta-large: hh-rlhf-ko helpful"),
    Preset("pku-saferlhf-ko-better", "PKU-SafeRLHF-ko, chosen = better_response_id, test split",
           "heegyu/PKU-SafeRLHF-ko", "**/test*", "pku-saferlhf-ko", "test", (filters.subset_is("better"),),
           "heegyu/ko-reward-model-helpful-roberta-large: PKU-SafeRLHF-ko better"),
    Preset("ko-ultrafeedback-binarized", "maywell/ko_Ultrafeedback_binarized (GPT-4 labels), Korean",
           "maywell/ko_Ultrafeedback_binarized", "**/*", "preference", None, (),
           "heegyu/ko-reward-model-helpful-roberta-large: ko-ultrafeedback-binarized",
           language="ko", source_name="ko-ultrafeedback-binarized", objective="general", labeler="llm-judge"),
    Preset("hh-rlhf", "Anthropic hh-rlhf, one subset per file (harmless-base, helpful-base, ...)",
           "Anthropic/hh-rlhf", "**/*test*.jsonl*", "hh-rlhf", "test", (),
           # 47 of the 8,552 have an empty answer or the same answer twice: dropped and counted (issue 27)
           "Anthropic hh-rlhf test split: 8,552 pairs (2,312 / 2,354 / 1,137 / 2,749)", 8505),
    Preset("square", "naver-ai SQuARe OOD responses: acceptable vs not-acceptable pairs per question (safety)",
           None, "**/response_test_ood*.json", "square", None, (),
           "naver-ai/korean-safety-benchmarks data/SQuARe (GitHub; not on the hub)", 107),
    Preset("kudge", "KUDGE challenge (right vs wrong answer) + k2-eval pairwise false-info",
           None, "**/*.csv", None, None, (),
           "guijinSON/kudge (GitHub; not on the hub): challenge ko 381 + en 365, false-info ko 54", 800),
]}


def get_preset(name: str) -> Preset:
    """The preset called `name`; raises RewardsmithError listing close matches and all names."""
    return lookup_name(PRESETS, "preset", name, cutoff=0.4,
                       fix="A file or folder of your own is read without a preset.")
