"""Training data: preference pairs -> token ids -> length-grouped (2B, T) batches.

Every sequence is built by `rewardsmith.models.encode`, the one input format shared with scoring,
evaluation and serving. This module only decides which pairs are kept (length), which are held
out (by prompt), and in which order and groups they are seen (seeded, so a resumed run sees the
same order).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from rewardsmith.data.record import PreferencePair
from rewardsmith.errors import RewardsmithError


@dataclass(frozen=True, eq=False)
class EncodedPair:
    """A pair as token ids. `margin` is 0.0 when the source gave none.

    group: "language/objective/labeler" (data.objectives.group_name), what validation reports by;
    weight: its loss weight (config.group_weights); response_tokens: (chosen, rejected) response
    lengths in tokens before any truncation, for the length baselines validation reports beside
    the model ("longer wins" needs the real lengths, not the truncated inputs'); prompt_key: the
    prompt's fingerprint (data.record.prompt_key), so validation intervals resample whole prompts
    (None: the pair is its own prompt); baseline_chosen: chose_baseline(pair), so validation can
    report the two sides of a set judged against one baseline model apart.

    The ids are kept as int32 arrays (any sequence of ints is accepted): a training set holds
    every pair for the whole run, and a list of Python ints costs ~36 bytes a token (a pointer
    and an int object: vocabularies are far past the 256 small ints Python shares), an array 4.
    """

    chosen: np.ndarray  # (T_c,) int32
    rejected: np.ndarray  # (T_r,) int32
    margin: float
    language: str
    group: str = "unknown/unknown/unknown"
    weight: float = 1.0
    response_tokens: tuple[int, int] = (0, 0)
    prompt_key: str | None = None
    baseline_chosen: bool | None = None

    def __post_init__(self):
        object.__setattr__(self, "chosen", np.asarray(self.chosen, dtype=np.int32))
        object.__setattr__(self, "rejected", np.asarray(self.rejected, dtype=np.int32))

    @property
    def length(self) -> int:  # both rows of a pair share the batch's padded length
        return max(len(self.chosen), len(self.rejected))

    @functools.cached_property
    def shared_length(self) -> int:
        """Tokens both sides start with, leaving each at least its last token (the one the reward
        is read at): computed once, read by both length grouping and make_batch every epoch."""
        n = min(len(self.chosen), len(self.rejected))
        differ = np.flatnonzero(self.chosen[:n] != self.rejected[:n])
        common = int(differ[0]) if differ.size else n
        return min(common, len(self.chosen) - 1, len(self.rejected) - 1)


@dataclass
class EncodeReport:
    """What happened to each pair on the way to token ids, by language."""

    kept: Counter = field(default_factory=Counter)
    dropped_for_length: Counter = field(default_factory=Counter)
    truncated: Counter = field(default_factory=Counter)  # prompt cut
    response_truncated: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        langs = sorted(set(self.kept) | set(self.dropped_for_length))
        parts = [
            f"{lang}: kept {self.kept[lang]}, dropped for length {self.dropped_for_length[lang]}"
            + (f", prompt truncated {self.truncated[lang]}" if self.truncated[lang] else "")
            + (f", response truncated {self.response_truncated[lang]}" if self.response_truncated[lang] else "")
            for lang in langs
        ]
        return "; ".join(parts) or "no pairs"

    def to_dict(self) -> dict:
        return {"kept": dict(self.kept), "dropped_for_length": dict(self.dropped_for_length),
                "prompt_truncated": dict(self.truncated), "response_truncated": dict(self.response_truncated)}


def encode_pairs(pairs: list[PreferencePair], tokenizer, manifest, over_length: str = "drop",
                 weight_of: Callable[[str], float] | None = None) -> tuple[list[EncodedPair], EncodeReport]:
    """Encode both sides of every pair with `models.encode` at `manifest.max_length`.

    over_length="drop": a pair is dropped (counted by language) when either side did not fit;
    the label then always describes exactly what the model saw.
    "truncate": the manifest's truncation applies (the prompt is cut on its truncation side, then
    a response that alone is too long loses its end); counted as prompt / response truncated.
    weight_of: a pair's loss weight from its group (`group_weights`); 1 for all when None.
    Returns the encoded pairs (input order kept) and the report.
    """
    from rewardsmith.data.filters import n_tokens
    from rewardsmith.data.objectives import group_name
    from rewardsmith.models import TruncationStats, encode

    report = EncodeReport()
    out = []
    stats = TruncationStats()
    quiet = logging.getLogger("rewardsmith.models.formatting")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # each cut is counted below, not logged once per sequence
    try:
        for pair in pairs:
            lang = pair.language or "unknown"
            before = (stats.prompt_truncated, stats.response_truncated)
            ids = [encode(tokenizer, manifest, conv, resp, stats=stats)
                   for conv, resp in (pair.chosen_conversation(), pair.rejected_conversation())]
            prompt_cut = stats.prompt_truncated > before[0]
            response_cut = stats.response_truncated > before[1]
            if over_length == "drop" and (prompt_cut or response_cut):
                report.dropped_for_length[lang] += 1
                continue
            if prompt_cut:
                report.truncated[lang] += 1
            if response_cut:
                report.response_truncated[lang] += 1
            report.kept[lang] += 1
            group = group_name(pair)
            out.append(EncodedPair(ids[0], ids[1], float(pair.margin or 0.0), lang, group,
                                   weight_of(group) if weight_of else 1.0,
                                   (n_tokens(tokenizer, pair.chosen), n_tokens(tokenizer, pair.rejected)),
                                   pair.prompt_key, chose_baseline(pair)))
    finally:
        quiet.setLevel(level)
    return out, report


def group_weights(weights: Mapping[str, float]) -> Callable[[str], float]:
    """group name -> loss weight: the first pattern of `weights` ("ko/harmlessness", "*/helpfulness/human")
    that matches the group (a two-part pattern matches every labeler), else 1."""
    import fnmatch

    patterns = [(p if p.count("/") == 2 else p + "/*", w) for p, w in weights.items()]

    def weight_of(group: str) -> float:
        return next((w for p, w in patterns if fnmatch.fnmatchcase(group, p)), 1.0)

    return weight_of


def split_by_prompt(pairs: list[PreferencePair], fraction: float, seed: int
                    ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Hold out about `fraction` of the pairs, whole prompts at a time -> (train, validation).

    Pairs that share a prompt (e.g. MT-Bench: 80 questions, many model pairs each) go to the same
    side, so validation accuracy is measured on prompts the model never saw. The choice is a hash
    of (seed, prompt), so it does not depend on the order or the number of pairs.
    """
    train, val = [], []
    for pair in pairs:
        (val if prompt_hash(pair.prompt, seed) < fraction else train).append(pair)
    return train, val


def prompt_hash(prompt: list, seed: int) -> float:
    """A conversation's place in [0, 1), fixed by (seed, prompt): what held-out splits cut on."""
    key = json.dumps([seed, prompt], ensure_ascii=False, sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def sample(pairs: list, limit: int | None, seed: int) -> list:
    """At most `limit` items, a seeded random sample in the original order (all when limit is None)."""
    if limit is None or len(pairs) <= limit:
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), limit))
    return [pairs[i] for i in keep]


def balance(pairs: list[PreferencePair], side: Callable[[PreferencePair], bool | None], share: float,
            seed: int) -> list[PreferencePair]:
    """A seeded subsample (original order) in which `share` of the pairs with side(p) True or False
    have it True: the side over its share is cut, nothing is added; pairs with side(p) None stay."""
    yes = [i for i, p in enumerate(pairs) if side(p) is True]
    no = [i for i, p in enumerate(pairs) if side(p) is False]
    if not yes or not no:
        return pairs
    if len(yes) / (len(yes) + len(no)) > share:
        cut, keep_n = yes, round(len(no) * share / (1 - share))
    else:
        cut, keep_n = no, round(len(yes) * (1 - share) / share)
    dropped = set(cut) - set(random.Random(seed).sample(cut, min(keep_n, len(cut))))
    return [p for i, p in enumerate(pairs) if i not in dropped]


def strength_margins(pairs: list[PreferencePair], margins: Mapping[str, float], where: str
                     ) -> tuple[list[PreferencePair], Counter]:
    """Pairs with `margin` set from their label_info.strength through `margins` (the others as they
    are), and how many pairs had each strength (None: no strength recorded).

    Raises RewardsmithError when no pair has a strength `margins` lists: the setting would do nothing.
    """
    seen: Counter = Counter(p.label_info.get("strength") for p in pairs)
    if pairs and not any(s in margins for s in seen):
        found = ", ".join(f"{s!r} ({n})" for s, n in seen.most_common(5))
        raise RewardsmithError(f"{where}: margins lists strengths {sorted(margins)}, but no pair's label_info.strength "
                               f"is one of them (found: {found}); fix the keys, or drop margins for this source")
    out = [replace(p, margin=margins[p.label_info["strength"]])
           if p.label_info.get("strength") in margins else p for p in pairs]
    return out, seen


def chose_longer(p: PreferencePair) -> bool | None:
    """Whether the chosen answer is the longer one, in characters (None for equal lengths)."""
    return None if len(p.chosen) == len(p.rejected) else len(p.chosen) > len(p.rejected)


def chose_baseline(p: PreferencePair) -> bool | None:
    """Whether the chosen answer is the baseline model's, for pairs judged against a baseline
    (label_info.baseline_model, as Arena-Hard-style sets record it; None otherwise)."""
    info = p.label_info
    baseline = info.get("baseline_model")
    if not baseline or baseline not in (info.get("chosen_model"), info.get("rejected_model")):
        return None
    return info.get("chosen_model") == baseline


def micro_batches(lengths: list[int] | list[tuple[int, int]], micro_batch_size: int, seed: int, epoch: int,
                  group_by_length: bool = True, group_factor: int = 64, strips: int = 8) -> list[list[int]]:
    """The epoch's micro-batches of pair indices, each exactly `micro_batch_size` long.

    Length grouping (as TRL/HF `group_by_length`): shuffle, cut into mega-groups of
    `group_factor * micro_batch_size` pairs, sort each by length, slice into micro-batches, then
    shuffle the micro-batches. Neighbours in a micro-batch have similar lengths, so little compute
    goes to padding, while the order stays random. The remainder (< micro_batch_size) is left out.
    The result depends only on (lengths, micro_batch_size, seed, epoch): the number of
    processes does not change it, and a resumed run rebuilds the same list.

    (prefix, suffix) lengths (`split_lengths`, for make_batch's shared-prefix layout, which pads
    the two apart): a mega-group is sorted by prefix length, cut into `strips` strips, and each
    strip sorted by suffix length, so both paddings stay small (hh-rlhf pairs on gemma-3-270m,
    4 pairs a micro-batch: 207k tokens run against 252k sorting by prefix alone, 271k unshared).
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order = order[: len(order) - len(order) % micro_batch_size]
    if group_by_length:
        size = group_factor * micro_batch_size
        order = [i for s in range(0, len(order), size)
                 for i in length_sorted(order[s:s + size], lengths, micro_batch_size, strips)]
    batches = [order[s:s + micro_batch_size] for s in range(0, len(order), micro_batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches


def length_sorted(indices: list[int], lengths: Mapping[int, int] | Mapping[int, tuple[int, int]]
                  | list[int] | list[tuple[int, int]], batch_size: int, strips: int = 8) -> list[int]:
    """`indices` longest first, so consecutive `batch_size` slices pad little (`lengths[i]` is
    index i's length).

    Plain lengths sort once. (prefix, suffix) lengths (`split_lengths`) sort by prefix, are cut
    into `strips` strips of whole batches, and each strip sorts by suffix: the shared-prefix
    layout pads the two apart, and sorting by either alone leaves the other ragged.
    """
    if not indices or not isinstance(lengths[indices[0]], tuple):
        return sorted(indices, key=lambda i: -lengths[i])
    by_prefix = sorted(indices, key=lambda i: -lengths[i][0])
    strip = max(1, round(len(by_prefix) / batch_size / strips)) * batch_size
    return [i for t in range(0, len(by_prefix), strip)
            for i in sorted(by_prefix[t:t + strip], key=lambda i: -lengths[i][1])]


def log_length_ratio(pair: EncodedPair) -> float:
    """log(1 + chosen tokens) - log(1 + rejected tokens), before truncation: the covariate of the
    loss's length term (config.length_control)."""
    c, r = pair.response_tokens
    return math.log1p(c) - math.log1p(r)


def split_lengths(pair: EncodedPair) -> tuple[int, int]:
    """(tokens both sides start with, longer side's tokens after them): the shared-prefix layout's
    two padded widths (`EncodedPair.shared_length`)."""
    return pair.shared_length, pair.length - pair.shared_length


def make_batch(pairs: list[EncodedPair], pad_id: int, padding_side: str = "right",
               share_prefix: bool = False, min_saving: int | None = None,
               length_index: Mapping[str, int] | None = None) -> dict:
    """B pairs -> {"input_ids", "attention_mask": (2B, T), "margin", "weight": (B,), "tokens", "computed",
    "padded"}, and "length_diff" / "length_group" (B,) when `length_index` (group -> index) is given.

    Rows 0..B-1 are the chosen inputs, rows B..2B-1 the rejected inputs of the same pairs, so one
    forward pass scores both (the layout `loss.bradley_terry_loss` expects).

    share_prefix (causal decoders only): the ids both sides of a pair start with become
    "prefix_ids" / "prefix_mask" (B, P), left-padded, and "input_ids" / "attention_mask" hold
    only what follows (right-padded), for `RewardModule` to run against the prefix's cache; each
    side keeps at least its last token (`EncodedPair.shared_length`). Only where that runs at
    least `min_saving` fewer tokens per pair (default `models.prefix.MIN_SHARED_PREFIX`, 32: a
    chat template's header alone is not worth a second pass); otherwise the layout above.
    "tokens" counts the pairs' real tokens either way; "computed" the real tokens run;
    "padded" the tokens run, padding included.
    """
    import torch

    from rewardsmith.models import collate
    from rewardsmith.models.prefix import MIN_SHARED_PREFIX

    sequences = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    tokens = sum(len(s) for s in sequences)
    margin = torch.tensor([p.margin for p in pairs], dtype=torch.float32)
    weight = torch.tensor([p.weight for p in pairs], dtype=torch.float32)
    extra = {"margin": margin, "weight": weight}
    if length_index:  # the loss's length term (config.length_control); no other batch pays for it
        extra["length_diff"] = torch.tensor([log_length_ratio(p) for p in pairs], dtype=torch.float32)
        extra["length_group"] = torch.tensor([length_index[p.group] for p in pairs], dtype=torch.long)
    if share_prefix:
        shared = [p.shared_length for p in pairs]
        suffixes = [p.chosen[k:] for p, k in zip(pairs, shared)] + [p.rejected[k:] for p, k in zip(pairs, shared)]
        rows, width = len(pairs), max(len(s) for s in sequences)
        padded = rows * max(shared) + 2 * rows * max(len(s) for s in suffixes)
        saving = MIN_SHARED_PREFIX if min_saving is None else min_saving
        if min(shared) >= 1 and padded + saving * rows <= 2 * rows * width:
            prefix = collate([p.chosen[:k] for p, k in zip(pairs, shared)], pad_id, padding_side="left")
            batch = dict(collate(suffixes, pad_id))
            batch.update(prefix_ids=prefix["input_ids"], prefix_mask=prefix["attention_mask"], **extra,
                         tokens=tokens, computed=sum(shared) + sum(len(s) for s in suffixes), padded=padded)
            return batch
    batch = dict(collate(sequences, pad_id, padding_side))
    batch.update(extra)
    batch["tokens"] = batch["computed"] = tokens  # real tokens
    batch["padded"] = int(batch["input_ids"].numel())  # tokens computed, padding included
    return batch
