"""Shared prompts computed once: a causal decoder's responses to one conversation reuse its keys and values.

Under causal attention a token's hidden states depend only on the tokens before it, so when n
responses to one conversation are scored (a preference pair, best-of-n, a judge's candidates),
the conversation's tokens come out the same in all n sequences. `group_by_prefix` finds such
runs among the sequences to score by their longest common token prefix (exact by construction:
the ids themselves, not the conversation text, so a chat template that merges the boundary
still groups correctly); `shared_prefix_rewards` runs the prefix once with a key/value cache and
then only the n suffixes, in batches, against copies of that cache. Rewards equal the full
forward's to float rounding (tested to 1e-5 in fp32, sliding-window attention included).

Encoders attend both ways, so a prompt's states depend on the response: they never share.
"""

from __future__ import annotations

import copy
from typing import Sequence

from rewardsmith.models.formatting import CPU_BATCH_COST, collate, plan_batches

# A prefix shorter than this is a chat template's header ("<bos><start_of_turn>user\n"), not a
# shared prompt: grouping on it saves nothing worth a separate pass.
MIN_SHARED_PREFIX = 32


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def group_by_prefix(sequences: Sequence[Sequence[int]], min_prefix: int = MIN_SHARED_PREFIX
                    ) -> tuple[list[tuple[int, list[int]]], list[int]]:
    """([(prefix length, [index, ...]), ...], [ungrouped index, ...]) for distinct sequences.

    Sequences are sorted by their ids, so those sharing a prefix are neighbours, and a run of
    neighbours shares the smallest common prefix between them. Links shorter than `min_prefix`
    cut the sorted list into blocks; a block is then kept whole or split at its weakest link,
    whichever skips more tokens ((members - 1) x shared length), recursively. The shared part
    always leaves every member at least one token of its own (the one whose state is pooled)."""
    order = sorted(range(len(sequences)), key=lambda i: tuple(sequences[i]))
    links = [_common_prefix(sequences[a], sequences[b]) for a, b in zip(order, order[1:])]
    groups: list[tuple[int, list[int]]] = []
    singles: list[int] = []

    def best(lo: int, hi: int) -> tuple[int, list[tuple[int, list[int]]]]:
        """(tokens skipped, runs) for order[lo..hi], hi inclusive."""
        if lo == hi:
            return 0, [(0, [order[lo]])]
        members = order[lo:hi + 1]
        shared = min(min(links[lo:hi]), min(len(sequences[i]) for i in members) - 1)
        whole = (len(members) - 1) * shared if shared >= min_prefix else 0
        # Any split skips at most (members - 2) x its longest link: n responses to one
        # conversation (equal links) stop here, without recursing n deep.
        if whole and whole >= (len(members) - 2) * max(links[lo:hi]):
            return whole, [(shared, members)]
        cut = min(range(lo, hi), key=links.__getitem__)
        left, right = best(lo, cut), best(cut + 1, hi)
        if left[0] + right[0] > whole:
            return left[0] + right[0], left[1] + right[1]
        return whole, [(shared if whole else 0, members)]

    lo = 0
    for hi in range(len(order)):
        if hi == len(order) - 1 or links[hi] < min_prefix:
            for shared, members in best(lo, hi)[1]:
                if shared and len(members) > 1:
                    groups.append((shared, members))
                else:
                    singles.extend(members)
            lo = hi + 1
    return groups, singles


def _rows_of(cache, index):
    """A cache of rows `index` of `cache`, leaving `cache` as it was for the next suffix batch.

    A forward pass appends to the cache it is given, but by reassigning each layer's tensors
    (torch.cat), never writing into them; so shallow copies of the layers, whose tensors
    `batch_select_indices` replaces by indexed ones, copy the prefix's keys and values once
    (deepcopy and then selecting copied them twice)."""
    rows = copy.copy(cache)
    rows.layers = [copy.copy(layer) for layer in cache.layers]
    rows.batch_select_indices(index)
    return rows


def shared_prefix_rewards(model, groups: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]], pad_id: int,
                          token_budget: int, device, batch_cost: int = CPU_BATCH_COST) -> list[list[float]]:
    """Rewards of prefix + suffix for each (prefix, [suffix, ...]) group, each prefix run once.

    Prefixes of several groups run together, left-padded, so every row's last prefix token sits
    in the same column and its suffix follows with no gap: sliding-window attention, which
    counts columns, then sees what it would without padding. Suffix rows (right-padded) from all
    those groups run next against their own prefix's cache rows (`_rows_of`), with the mask
    covering both parts and positions continuing from each row's prefix length."""
    import torch

    from rewardsmith.models.loading import score_head

    base = model.base_model
    rewards: list[list[float]] = [[0.0] * len(suffixes) for _, suffixes in groups]
    for prefix_batch in plan_batches([len(p) for p, _ in groups], token_budget, batch_cost=batch_cost):
        prefixes = collate([groups[g][0] for g in prefix_batch], pad_id, padding_side="left")
        prefix_mask = prefixes["attention_mask"].to(device)
        lengths = prefix_mask.sum(-1)  # (G,) each prefix's real length: its suffix's first position
        cache = base(input_ids=prefixes["input_ids"].to(device), attention_mask=prefix_mask,
                     position_ids=(prefix_mask.cumsum(-1) - 1).clamp(min=0), use_cache=True).past_key_values
        rows = [(row, g, j) for row, g in enumerate(prefix_batch) for j in range(len(groups[g][1]))]
        batches = plan_batches([len(groups[g][1][j]) for _, g, j in rows], token_budget,
                               cached=prefix_mask.shape[1], batch_cost=batch_cost)
        for batch in batches:
            picked = [rows[i] for i in batch]
            suffix = collate([groups[g][1][j] for _, g, j in picked], pad_id)
            suffix_mask = suffix["attention_mask"].to(device)
            index = torch.tensor([row for row, _, _ in picked], device=device)
            past = _rows_of(cache, index)
            positions = lengths[index, None] + torch.arange(suffix_mask.shape[1], device=device)
            hidden = base(input_ids=suffix["input_ids"].to(device),
                          attention_mask=torch.cat([prefix_mask[index], suffix_mask], dim=1),
                          position_ids=positions, past_key_values=past, use_cache=True).last_hidden_state
            last = suffix_mask.sum(-1) - 1
            pooled = hidden[torch.arange(len(picked), device=device), last]
            for (_, g, j), r in zip(picked, score_head(model, pooled).tolist()):
                rewards[g][j] = r
    return rewards
