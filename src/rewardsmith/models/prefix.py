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


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids a and b share."""
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
    links = [common_prefix_length(sequences[a], sequences[b]) for a, b in zip(order, order[1:])]
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


def run_prefixes(base, input_ids, attention_mask):
    """Left-padded prefixes (G, P) through the backbone: (their key/value cache, each one's length).

    Left padding puts every row's last prefix token in the same column, so its suffix follows
    with no gap: sliding-window attention, which counts columns, then sees what it would without
    padding. Positions start at 0 on each row's first real token."""
    cache = base(input_ids=input_ids, attention_mask=attention_mask,
                 position_ids=(attention_mask.cumsum(-1) - 1).clamp(min=0), use_cache=True).past_key_values
    return cache, attention_mask.sum(-1)


def run_suffixes(model, cache, prefix_mask, lengths, owners, input_ids, attention_mask):
    """Rewards (N,) of right-padded suffixes (N, S), row n continuing prefix row owners[n].

    The mask covers the owner's (padded) prefix and the suffix; positions continue from the
    owner's prefix length; the reward is read at the suffix's last real token. `cache` is left
    as it was (`_rows_of`), so several suffix batches can follow one prefix pass."""
    import torch

    from rewardsmith.models.loading import score_head

    positions = lengths[owners, None] + torch.arange(attention_mask.shape[1], device=attention_mask.device)
    hidden = model.base_model(input_ids=input_ids, attention_mask=torch.cat([prefix_mask[owners], attention_mask], 1),
                              position_ids=positions, past_key_values=_rows_of(cache, owners),
                              use_cache=True).last_hidden_state
    last = attention_mask.sum(-1) - 1
    return score_head(model, hidden[torch.arange(len(owners), device=hidden.device), last])


def shared_prefix_rewards(model, groups: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]], pad_id: int,
                          token_budget: int, device, batch_cost: int = CPU_BATCH_COST) -> list[list[float]]:
    """Rewards of prefix + suffix for each (prefix, [suffix, ...]) group, each prefix run once.

    Prefixes of several groups run together (`run_prefixes`); suffix rows from all those groups
    run next in batches of their own (`run_suffixes`), each against its prefix's cache rows."""
    import torch

    rewards: list[list[float]] = [[0.0] * len(suffixes) for _, suffixes in groups]
    for prefix_batch in plan_batches([len(p) for p, _ in groups], token_budget, batch_cost=batch_cost):
        prefixes = {k: v.to(device) for k, v in
                    collate([groups[g][0] for g in prefix_batch], pad_id, padding_side="left").items()}
        cache, lengths = run_prefixes(model.base_model, **prefixes)
        rows = [(row, g, j) for row, g in enumerate(prefix_batch) for j in range(len(groups[g][1]))]
        batches = plan_batches([len(groups[g][1][j]) for _, g, j in rows], token_budget,
                               cached=prefixes["input_ids"].shape[1], batch_cost=batch_cost)
        for batch in batches:
            picked = [rows[i] for i in batch]
            suffix = collate([groups[g][1][j] for _, g, j in picked], pad_id)
            owners = torch.tensor([row for row, _, _ in picked], device=device)
            out = run_suffixes(model, cache, prefixes["attention_mask"], lengths, owners,
                               suffix["input_ids"].to(device), suffix["attention_mask"].to(device))
            for (_, g, j), r in zip(picked, out.tolist()):
                rewards[g][j] = r
    return rewards
