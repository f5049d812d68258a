"""The scorer: rewards for many (conversation, response) items, fast and batch-size independent.

    scorer = Scorer(load_reward_model("out/rm"))                  # token_budget: per device, below
    scorer.score([(conversation, response), ...])          -> [reward, ...]   (input order)
    scorer.compare(conversation, a, b)                      -> P(a better than b) = sigmoid(r_a - r_b)
    scorer.best_of_n(conversation, [r1, r2, r3])            -> [(index, reward), ...] best first

How it is fast (the card's recipe pads every input to 4,096 tokens and scores one at a time):
identical inputs are encoded and scored once; sequences are sorted by length and cut into
batches whose padded size (rows x longest) stays under `token_budget`, at the cut points where
padding would cost more than another forward pass (`plan_batches`), so padding is a few % of the
tokens, never up to max_length; encoders' last layer runs for the [CLS] row alone
(`models/cls_only.py`, ~7% fewer FLOPs); a decoder runs a conversation shared by several
responses (a pair, best-of-n) once and only the responses after it (`models/prefix.py`);
`torch.inference_mode`; bf16 autocast where the
hardware has bf16 units (CPU avx512_bf16/AMX, CUDA compute >= 8.0), or native bf16 when the
model was loaded in bf16 (`scoring_dtype`; faster still: no casts per op). Right padding plus
mask-based pooling makes a row's score independent of its batch-mates (tested to 1e-5 in fp32).

The token budget defaults by device (`default_token_budget`): on CPU, small batches are faster
per token, because the element-wise work between matmuls (norms, GELU, casts) is bound by memory
bandwidth and a batch of ~2k tokens keeps its activations in cache (about twice the tokens/s of
16k-token batches on gemma-3-270m; docs/benchmarks.md). GPUs want large batches.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import TYPE_CHECKING, Literal, Sequence

from rewardsmith.errors import RewardsmithError
from rewardsmith.models.attention import use_causal_skip
from rewardsmith.models.cls_only import cls_only_last_layer
from rewardsmith.models.formatting import CPU_BATCH_COST, TruncationStats, collate, encode, plan_batches
from rewardsmith.models.loading import RewardModel, is_causal_decoder, reward_forward
from rewardsmith.models.precision import bf16_supported, warn_if_bf16_is_emulated
from rewardsmith.models.prefix import group_by_prefix, shared_prefix_rewards

if TYPE_CHECKING:
    from rewardsmith.data.record import PreferencePair

log = logging.getLogger(__name__)

Precision = Literal["auto", "bf16", "fp32"]

CPU_TOKEN_BUDGET = 2048
GPU_TOKEN_BUDGET = 16384
# What one more forward pass costs, in tokens, when the planner weighs padding against another
# batch (formatting.plan_batches). CPU: measured (formatting.CPU_BATCH_COST). GPU: not measured
# here (no GPU); a pass of a small model is launch-bound, ~3 ms for a few hundred kernels, while
# a token costs microseconds, so padding is cheap there and batches stay large.
GPU_BATCH_COST = 1024


def _is_cpu(device) -> bool:
    """True for "cpu", torch.device("cpu"); False for "cuda:0", "mps", ..."""
    return getattr(device, "type", str(device)).split(":")[0] == "cpu"


def default_token_budget(device="cpu") -> int:
    """Padded tokens (rows x longest) per forward pass when the user gives none: 2048 on CPU
    (activations stay in cache; see the module docstring), 16384 on accelerators."""
    return CPU_TOKEN_BUDGET if _is_cpu(device) else GPU_TOKEN_BUDGET


def default_batch_cost(device="cpu") -> int:
    """Tokens of padding worth one more forward pass: 64 on CPU (measured), 1024 on accelerators."""
    return CPU_BATCH_COST if _is_cpu(device) else GPU_BATCH_COST


def scoring_dtype(precision: Precision = "auto", device: str = "cpu"):
    """The dtype to load a model in for scoring at `precision`: bf16 where the hardware has it
    (for "auto"), else fp32. `load_reward_model(path, dtype=scoring_dtype("auto"))`."""
    import torch

    if precision not in ("auto", "bf16", "fp32"):
        raise RewardsmithError(f"precision={precision!r}: use auto, bf16 or fp32")
    if precision == "auto":
        precision = "bf16" if bf16_supported(torch.device(device)) else "fp32"
    elif precision == "bf16":
        warn_if_bf16_is_emulated(torch.device(device))
    return torch.bfloat16 if precision == "bf16" else torch.float32


class Scorer:
    """Scores (conversation, response) items with a reward model; see the module docstring."""

    def __init__(self, rm: RewardModel, *, token_budget: int | None = None, precision: Precision = "auto",
                 progress: bool = False, compile: bool = False, share_prefix: bool = True):
        """compile: run the forward pass through `torch.compile(dynamic=True)`. It fuses the
        element-wise work (norms, activations, rotary) that dominates CPU time at these sizes,
        after a one-time compile of a minute or two (cached on disk by torch for later runs). The
        gain depends on the CPU and the model, from none to 1.5x (docs/benchmarks.md, "Compile"):
        worth it for thousands of sequences.

        share_prefix: a causal decoder scores the responses to one conversation against a single
        pass over its tokens (models/prefix.py): pairs, best-of-n and judged candidates skip the
        repeated prompt. Same rewards to float rounding; off under compile (its graphs take no
        cache) and for encoders, whose prompt states depend on the response."""
        import torch

        if precision not in ("auto", "bf16", "fp32"):
            raise RewardsmithError(f"precision={precision!r}: use auto, bf16 or fp32")
        if token_budget is not None and token_budget < 1:
            raise RewardsmithError(f"token_budget={token_budget}: must be a positive number of tokens")
        self.rm = rm
        self.progress = progress
        param = next(rm.model.parameters())
        self.device = param.device
        self.token_budget = token_budget if token_budget is not None else default_token_budget(self.device)
        self.batch_cost = default_batch_cost(self.device)
        if precision == "fp32" and param.dtype != torch.float32:
            raise RewardsmithError(f"precision='fp32' but the model was loaded in {param.dtype}; "
                                   "load it with dtype='fp32' (the default) for fp32 scores")
        use_bf16 = precision == "bf16" or param.dtype == torch.bfloat16 or (
            precision == "auto" and bf16_supported(self.device))
        self.dtype = torch.bfloat16 if use_bf16 else torch.float32
        # fp32 weights + bf16: autocast. Weights already in bf16 (load_reward_model(dtype=
        # scoring_dtype(...))) run natively: no per-op casts, faster on CPU (docs/benchmarks.md).
        self._needs_autocast = use_bf16 and param.dtype != torch.bfloat16
        self.stats = TruncationStats()
        self.compiled = compile
        self.share_prefix = share_prefix and not compile and is_causal_decoder(rm.model)
        self.prefix_tokens_skipped = 0  # tokens not run again because their prompt was shared
        # freezing: weights become constants of the graph, so inductor prepacks them for oneDNN and
        # fuses the element-wise work into the matmuls (inference only: this Scorer never trains).
        self._forward = torch.compile(reward_forward, dynamic=True, options={"freezing": True}) \
            if compile else reward_forward
        if compile:  # eager transformers already skips the causal mask; compiled it needs this.
            use_causal_skip(rm.model)  # switches rm.model in place; padded inputs still get the stock mask
        rm.model.eval()

    def autocast(self):
        """The precision context for a forward pass: bf16 autocast, or nothing when weights are native."""
        import torch

        if not self._needs_autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def encode_all(self, items: Sequence[tuple[list[dict], str]]) -> list[list[int]]:
        """Token ids of every item (the one input format), counting truncations in self.stats."""
        cut_before = self.stats.response_truncated
        ids = [encode(self.rm.tokenizer, self.rm.manifest, conv, resp, stats=self.stats) for conv, resp in items]
        if self.stats.response_truncated > cut_before:
            log.warning("%d response(s) longer than max_length=%d were cut at the end",
                        self.stats.response_truncated - cut_before, self.rm.manifest.max_length)
        return ids

    def score_ids(self, sequences: Sequence[Sequence[int]]) -> list[float]:
        """Rewards for already-encoded sequences, in input order; identical sequences run once."""
        import torch

        unique: dict[tuple[int, ...], int] = {}
        slots = [unique.setdefault(tuple(s), len(unique)) for s in sequences]
        keys = list(unique)
        rewards = [math.nan] * len(keys)
        # Decoders: responses to one conversation run its tokens once (models/prefix.py).
        groups, singles = group_by_prefix(keys) if self.share_prefix else ([], list(range(len(keys))))
        batches = [[singles[i] for i in b] for b in plan_batches([len(keys[i]) for i in singles], self.token_budget,
                                                                      batch_cost=self.batch_cost)]
        self.prefix_tokens_skipped += sum((len(members) - 1) * shared for shared, members in groups)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(keys), unit="seq", desc="scoring")
        # Encoders: the last layer computes only the [CLS] row the head reads (models/cls_only.py).
        with torch.inference_mode(), self.autocast(), cls_only_last_layer(self.rm.model):
            if groups:
                got = shared_prefix_rewards(self.rm.model, [(keys[m[0]][:shared], [keys[i][shared:] for i in m])
                                                            for shared, m in groups],
                                            self.rm.pad_id, self.token_budget, self.device, self.batch_cost)
                for (_, members), values in zip(groups, got):
                    for i, r in zip(members, values):
                        rewards[i] = r
                if bar is not None:
                    bar.update(sum(len(m) for _, m in groups))
            for batch in batches:
                rows = [keys[i] for i in batch]
                if self.compiled and len(rows) == 1:
                    rows = rows * 2  # dynamo specialises size-1 dims: a 1-row batch would compile again
                inputs = collate(rows, self.rm.pad_id)
                out = self._forward(self.rm.model, **{k: v.to(self.device) for k, v in inputs.items()},
                                    right_padded=True)
                for i, r in zip(batch, out.tolist()):
                    rewards[i] = r
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
        return [rewards[s] for s in slots]

    def score(self, items: Sequence[tuple[list[dict], str]]) -> list[float]:
        """One raw reward per (conversation, response), in input order."""
        if not items:
            return []
        return self.score_ids(self.encode_all(items))

    def score_pairs(self, pairs: Sequence["PreferencePair"]) -> list[tuple[float, float]]:
        """(chosen reward, rejected reward) per pair; both sides go through one length-sorted run."""
        items = [p.chosen_conversation() for p in pairs] + [p.rejected_conversation() for p in pairs]
        rewards = self.score(items)
        n = len(pairs)
        return list(zip(rewards[:n], rewards[n:]))

    def compare(self, conversation: list[dict], a: str, b: str) -> float:
        """P(a is better than b) under Bradley-Terry: sigmoid(r_a - r_b)."""
        return preference_probability(*self.score([(conversation, a), (conversation, b)]))

    def best_of_n(self, conversation: list[dict], responses: Sequence[str]) -> list[tuple[int, float]]:
        """[(index into responses, reward), ...] best first; ties keep input order."""
        rewards = self.score([(conversation, r) for r in responses])
        return sorted(enumerate(rewards), key=lambda t: -t[1])


def preference_probability(r_a: float, r_b: float) -> float:
    """P(a is better than b) from two rewards under Bradley-Terry: sigmoid(r_a - r_b)."""
    d = r_a - r_b
    # Written per sign so exp() never overflows, however far apart the rewards are.
    return 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))
