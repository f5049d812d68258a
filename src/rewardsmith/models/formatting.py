"""THE one input format: (conversation, response) -> token ids. Train, score, evaluate, serve call it.

Decoders ("chat_template"): the conversation plus the response as a final assistant turn,
rendered by the manifest's chat template and tokenised without adding special tokens (the
template writes BOS itself, as `apply_chat_template(tokenize=True)` does). The reward is read
at the last real token.

    [{"role": "user", "content": "卵のゆで方は?"}], "9分ゆでます。"
    -> "<bos><|im_start|>user\n卵のゆで方は?<|im_end|>\n<|im_start|>assistant\n9分ゆでます。<|im_end|>\n"

Encoders ("pair"): `[CLS] prompt [SEP] response [SEP]` through the tokenizer's own pair
post-processor (the Korean card's `prompt [SEP] response`). A conversation becomes the prompt
text by `flatten_prompt`: a lone user turn is its content as is (the card's way); anything longer
becomes one "role: content" line per turn, so earlier turns and the system prompt are kept.

Truncation (only when a sequence exceeds manifest.max_length): the PROMPT is cut on
manifest.truncation_side ("left" drops the oldest tokens and keeps the latest turns; a leading
BOS is kept). The response is kept whole; if it alone does not fit, its end is cut, the count
goes into `TruncationStats.response_truncated` (else a warning is logged). Sequences that fit are
exactly what the tokenizer gives for `render(...)`'s text, so `transformers.pipeline` fed that
text (with `add_special_tokens=False` for decoders) sees the same tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from rewardsmith.errors import RewardsmithError
from rewardsmith.models.manifest import Manifest

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_ROLES = ("system", "user", "assistant")


@dataclass
class TruncationStats:
    """Counts over a run of `encode` calls; pass one in to learn what was cut."""

    sequences: int = 0
    prompt_truncated: int = 0
    response_truncated: int = 0


def _check_conversation(conversation: Any, response: Any) -> None:
    if not isinstance(conversation, (list, tuple)):
        raise RewardsmithError(
            f"conversation must be a list of {{'role', 'content'}} messages, got {type(conversation).__name__}")
    for i, m in enumerate(conversation):
        if not isinstance(m, dict) or m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
            raise RewardsmithError(
                f"conversation[{i}] = {m!r:.120}: expected {{'role': one of {'/'.join(_ROLES)}, 'content': str}}")
    if not isinstance(response, str):
        raise RewardsmithError(f"response must be a string, got {type(response).__name__}")


def flatten_prompt(conversation: Sequence[dict]) -> str:
    """The prompt text of pair encoding.

    [{"role": "user", "content": "Q"}] -> "Q";
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
     {"role": "user", "content": "Q2"}] -> "user: Q1\\nassistant: A1\\nuser: Q2".
    """
    if len(conversation) == 1 and conversation[0]["role"] == "user":
        return conversation[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in conversation)


def _chat(tokenizer, manifest: Manifest, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=manifest.chat_template, add_generation_prompt=add_generation_prompt, tokenize=False)


def render(tokenizer, manifest: Manifest, conversation: Sequence[dict], response: str) -> dict[str, str]:
    """The untruncated text input, in the shape `transformers.pipeline("text-classification")` takes.

    Decoders -> {"text": chat-rendered string} (call the pipeline with add_special_tokens=False);
    encoders -> {"text": prompt, "text_pair": response}.
    """
    _check_conversation(conversation, response)
    if manifest.input_format == "pair":
        return {"text": flatten_prompt(conversation), "text_pair": response}
    return {"text": _chat(tokenizer, manifest, [*conversation, {"role": "assistant", "content": response}], False)}


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"] if text else []


def _note_response_cut(stats: TruncationStats | None, length: int, budget: int) -> None:
    if stats is not None:  # the caller counts and reports once
        stats.response_truncated += 1
        return
    log.warning("response of %d tokens does not fit max_length; its last %d tokens were cut", length, length - budget)


def _cut(ids: list[int], keep: int, side: str) -> list[int]:
    if keep <= 0:
        return []
    return ids[-keep:] if side == "left" else ids[:keep]


def _encode_pair(tokenizer, manifest: Manifest, prompt: str, response: str, stats: TruncationStats | None) -> list[int]:
    ids = tokenizer(prompt, response, add_special_tokens=True, verbose=False)["input_ids"]
    if len(ids) <= manifest.max_length:
        return ids
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise RewardsmithError(f"{type(tokenizer).__name__} is not a fast tokenizer; rewardsmith needs a tokenizer.json")
    a = backend.encode(prompt, add_special_tokens=False)
    b = backend.encode(response, add_special_tokens=False)
    budget = manifest.max_length - tokenizer.num_special_tokens_to_add(pair=True)
    room = budget - min(len(a), manifest.prompt_tokens)  # what the response may take
    if len(b) > room:
        _note_response_cut(stats, len(b), room)
        b.truncate(room, direction="right")
    keep = budget - len(b)
    if len(a) > keep:
        if stats is not None:
            stats.prompt_truncated += 1
        if keep > 0:
            a.truncate(keep, direction=manifest.truncation_side)
        else:
            a = backend.encode("", add_special_tokens=False)
    if backend.post_processor is None:
        return a.ids + b.ids
    return backend.post_processor.process(a, b, add_special_tokens=True).ids


def _encode_chat(tokenizer, manifest: Manifest, conversation: list[dict], response: str,
                 stats: TruncationStats | None) -> list[int]:
    full = _chat(tokenizer, manifest, [*conversation, {"role": "assistant", "content": response}], False)
    ids = _ids(tokenizer, full)
    if len(ids) <= manifest.max_length:
        return ids
    # Too long: split the text into body (earlier turns) | header (assistant turn opener) |
    # response | end (closing markers), tokenise the pieces and cut body, then response.
    prefix = _chat(tokenizer, manifest, list(conversation), True)
    if not full.startswith(prefix):  # a template that rewrites earlier turns: split at the response
        at = full.rfind(response) if response else -1
        prefix = full[:at] if at >= 0 else full
    body = _chat(tokenizer, manifest, list(conversation), False) if conversation else ""
    if not prefix.startswith(body):  # no separable assistant opener: treat the whole prefix as body
        body = prefix
    header = prefix[len(body):]
    tail = full[len(prefix):]
    at = tail.find(response) if response else -1
    resp_text, end_text = (tail[: at + len(response)], tail[at + len(response):]) if at >= 0 else (tail, "")
    body_ids, header_ids, resp_ids, end_ids = (_ids(tokenizer, t) for t in (body, header, resp_text, end_text))
    bos = getattr(tokenizer, "bos_token_id", None)
    lead = body_ids[:1] if body_ids and bos is not None and body_ids[0] == bos else []
    body_ids = body_ids[len(lead):]
    budget = manifest.max_length - len(lead) - len(header_ids) - len(end_ids)
    if budget <= 0:
        raise RewardsmithError(
            f"max_length={manifest.max_length} cannot hold the chat template's own markers; raise max_length")
    room = budget - min(len(body_ids), manifest.prompt_tokens)  # what the response may take
    if len(resp_ids) > room:
        _note_response_cut(stats, len(resp_ids), room)
        resp_ids = resp_ids[:room]
    keep = budget - len(resp_ids)
    if len(body_ids) > keep and stats is not None:
        stats.prompt_truncated += 1
    body_ids = _cut(body_ids, keep, manifest.truncation_side) if len(body_ids) > keep else body_ids
    return lead + body_ids + header_ids + resp_ids + end_ids


def encode(tokenizer, manifest: Manifest, conversation: Sequence[dict], response: str,
           *, stats: TruncationStats | None = None) -> list[int]:
    """Token ids for scoring `response` as the reply to `conversation`; at most manifest.max_length.

    Raises RewardsmithError for a malformed conversation (not a list of {role, content}).
    """
    _check_conversation(conversation, response)
    if stats is not None:
        stats.sequences += 1
    if manifest.input_format == "pair":
        return _encode_pair(tokenizer, manifest, flatten_prompt(conversation), response, stats)
    return _encode_chat(tokenizer, manifest, list(conversation), response, stats)


def collate(sequences: Sequence[Sequence[int]], pad_id: int, padding_side: str = "right") -> dict[str, "torch.Tensor"]:
    """Pad a batch to its own longest sequence (never to max_length).

    Returns {"input_ids": (B, T) long, "attention_mask": (B, T) long, 1 on real tokens}.
    """
    import torch

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(0, len(seq)) if padding_side == "right" else slice(width - len(seq), width)
        input_ids[row, span] = torch.as_tensor(seq, dtype=torch.long)
        attention_mask[row, span] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


# What one more forward pass costs on CPU, in tokens: the fixed cost a of time = a + b x tokens,
# fitted over batches of 256-2048 tokens, is ~100 tokens for multilingual-e5-small and 0-40 for
# gemma-3-270m; 64 sits between (docs/benchmarks.md). End to end the choice among 32, 64 and 128
# is within noise on whole sequences, whose lengths are dense so greedy filling already pads
# little; the gain is in sparse length sets such as a shared-prefix suffix pass.
CPU_BATCH_COST = 64


def plan_batches(lengths: Sequence[int], token_budget: int, cached: int = 0,
                 batch_cost: int = CPU_BATCH_COST) -> list[list[int]]:
    """Indices grouped into batches, longest first, with the fewest padded tokens plus
    `batch_cost` per forward pass: rows x longest <= token_budget (a single sequence longer than
    the budget gets a batch of its own).

    Filling each batch up to the budget pads badly where lengths fall fast (300, 200, 100, 50 in
    one batch is 1200 tokens for 650 real), and more so for the few rows of a shared-prefix
    suffix pass. So the sorted lengths are cut where padding would cost more than another pass:
    an exact dynamic programme over the cut points, a batch costing rows x longest + batch_cost.

    cached: tokens each row attends to from a key/value cache (models/prefix.py): the keys and
    values every layer holds for the batch, rows x (cached + longest), stay under 8x the budget.

    plan_batches([5, 100, 7, 98], 256) -> [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    sizes = [lengths[i] for i in order]
    # best[j]: the least cost of batching order[:j]; start[j]: where its last batch begins.
    # A batch order[i:j] is padded to sizes[i], its first (longest) row.
    best = [0] + [0] * len(sizes)
    start = [0] * (len(sizes) + 1)
    for j in range(1, len(sizes) + 1):
        best[j], start[j] = best[j - 1] + sizes[j - 1] + batch_cost, j - 1
        for i in range(j - 2, -1, -1):
            rows, longest = j - i, sizes[i]
            if rows * longest > token_budget or rows * (cached + longest) > 8 * token_budget:
                break  # earlier starts are longer still: none fits
            cost = best[i] + rows * longest + batch_cost
            if cost <= best[j]:  # ties: the larger batch, fewer passes
                best[j], start[j] = cost, i
    batches: list[list[int]] = []
    j = len(sizes)
    while j:
        batches.append(order[start[j]:j])
        j = start[j]
    return batches[::-1]
