"""The checkpoint manifest: how a reward model wants its input, saved as `rewardsmith.json`.

Every model rewardsmith writes carries one beside `config.json`, so that training, scoring,
evaluation and serving build exactly the same token sequence from (conversation, response):

    {"format_version": 1, "input_format": "chat_template", "max_length": 4096,
     "truncation_side": "left", "pooling": "last_token", "chat_template": "{% for m in ...",
     "raw_logits": true, "score_mean": 0.12, "score_std": 1.9, "base_model": "gemma-3-270m"}

A model without a manifest (a foreign reward model, a base model) gets `Manifest.for_model`:
the defaults that architecture and tokenizer imply, stated in a one-line log notice.

How the raw score reaches other tools (config.json carries num_labels=1, id2label={0: "reward"},
problem_type="regression", pad_token_id; the rest is stated here):
- transformers `pipeline("text-classification")`: problem_type "regression" makes its default
  function "none" (a one-label model without a problem type gets a sigmoid). Pass
  `function_to_apply="none"` for foreign models anyway. Feed it `render(...)`'s text, with
  `add_special_tokens=False` for decoders (the chat template writes BOS itself).
- vLLM (`--runner pooling`, `--convert classify` for *ForSequenceClassification): the classify
  activation follows problem_type like transformers' loss does (`get_classification_act_fn`:
  "regression" -> identity), so recent versions return the raw score; older ones apply a sigmoid
  to one-label models — turn it off per request (`"activation": false` / `"use_activation":
  false`) or with `--override-pooler-config`. Its pooling (last token for decoders, [CLS] for
  BERT) is ours. Send the rendered text without adding special tokens, or token ids.
- TEI (text-embeddings-inference) serves encoder classifiers (BERT, XLM-R, ...); `/predict`
  applies a sigmoid to one-label models unless the request says `"raw_scores": true`; nothing in
  config.json changes that. Its pair input is `{"inputs": [[prompt, response]]}`.
The chat template is also saved in the tokenizer files, so the tools above see the same text.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rewardsmith.errors import RewardsmithError

log = logging.getLogger(__name__)

MANIFEST_NAME = "rewardsmith.json"
FORMAT_VERSION = 1
DEFAULT_MAX_LENGTH = 4096  # the Japanese card's max_length; a model's own limit wins when smaller

# Supplied to decoders whose tokenizer has no chat template (e.g. gemma-3-270m base). ChatML-like,
# plain-text markers, so it needs no new tokens; the BOS is written by the template, as in
# Llama-3 / Gemma templates, and sequences are tokenised without adding special tokens.
CHATML_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Model types whose models are bidirectional encoders: pair encoding + [CLS] pooling.
ENCODER_TYPES = frozenset({
    "bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "electra", "deberta",
    "deberta-v2", "distilbert", "albert", "mpnet", "modernbert", "nomic_bert", "megatron-bert",
    "ernie", "rembert", "luke", "mobilebert",
})
# RoBERTa-family position ids start at pad_id + 1: two positions fewer than max_position_embeddings.
POSITION_OFFSET_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "luke"})

_CHOICES = {
    "input_format": ("chat_template", "pair"),
    "truncation_side": ("left", "right"),
    "pooling": ("last_token", "cls"),
}


@dataclass(frozen=True)
class Manifest:
    """How (conversation, response) becomes model input, and what the output means.

    input_format:    "chat_template" (decoders: the conversation plus the response as the last
                     assistant turn, rendered by the chat template) or "pair" (encoders:
                     `[CLS] prompt [SEP] response [SEP]`, the Korean card's way).
    max_length:      tokens per sequence, special tokens included.
    truncation_side: which end of the PROMPT is cut when too long ("left" keeps the latest
                     turns); the response is kept whole unless it alone is too long.
    prompt_tokens:   tokens of the prompt kept (when it has that many) even where the response
                     alone would fill max_length: the response's end is cut to make room. 0 (the
                     default): a response that fills max_length leaves no prompt at all, so the
                     model cannot tell an answer to the question from an answer to another.
    pooling:         "last_token" (decoders: the last real token) or "cls" (encoders).
    chat_template:   the Jinja template used (decoders), also saved in the tokenizer files.
    raw_logits:      outputs are raw rewards (no sigmoid); a sigmoid of a difference is P(a > b).
    score_mean/std:  statistics of the scores on the training data, for calibration.
    base_model:      what the reward model was initialised from (a name, path or hub id).
    """

    input_format: Literal["chat_template", "pair"]
    max_length: int
    truncation_side: Literal["left", "right"]
    pooling: Literal["last_token", "cls"]
    chat_template: str | None = None
    raw_logits: bool = True
    score_mean: float | None = None
    score_std: float | None = None
    base_model: str | None = None
    prompt_tokens: int = 0
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        problems = [
            f"{name}={getattr(self, name)!r} (expected one of {', '.join(choices)})"
            for name, choices in _CHOICES.items()
            if getattr(self, name) not in choices
        ]
        if not isinstance(self.max_length, int) or self.max_length < 8:
            problems.append(f"max_length={self.max_length!r} (expected an integer >= 8)")
        if not isinstance(self.prompt_tokens, int) or not 0 <= self.prompt_tokens <= self.max_length // 2:
            problems.append(f"prompt_tokens={self.prompt_tokens!r} (expected an integer from 0 to max_length / 2)")
        if self.input_format == "chat_template" and not self.chat_template:
            problems.append("chat_template is empty but input_format is 'chat_template' (give the template)")
        if problems:
            raise RewardsmithError("invalid manifest: " + "; ".join(problems))

    def save(self, directory: str | Path) -> Path:
        """Write `<directory>/rewardsmith.json`; returns its path."""
        path = Path(directory) / MANIFEST_NAME
        path.write_text(json.dumps(dataclasses.asdict(self), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "Manifest":
        """Read `<directory>/rewardsmith.json`. Raises RewardsmithError naming the file and field."""
        path = Path(directory) / MANIFEST_NAME
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RewardsmithError(f"{path}: no manifest; load the model with load_reward_model() for defaults") from None
        except json.JSONDecodeError as e:
            raise RewardsmithError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); fix or delete the file") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RewardsmithError(f"{path}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise RewardsmithError(
                f"{path}: format_version {data['format_version']} is newer than this rewardsmith "
                f"understands ({FORMAT_VERSION}); upgrade rewardsmith"
            )
        try:
            return cls(**data)
        except TypeError as e:  # a missing required field
            raise RewardsmithError(f"{path}: {e}") from None
        except RewardsmithError as e:
            raise RewardsmithError(f"{path}: {e}") from None

    @classmethod
    def for_model(cls, config, tokenizer, *, max_length: int | None = None,
                  truncation_side: Literal["left", "right"] = "left",
                  chat_template: str | None = None, base_model: str | None = None,
                  prompt_tokens: int = 0) -> "Manifest":
        """The defaults a model's architecture and tokenizer imply.

        Encoders (BERT, RoBERTa, ...) -> pair input, [CLS] pooling. Everything else is treated as
        a decoder -> chat template (the tokenizer's, else `chat_template`, else CHATML_TEMPLATE),
        last-token pooling. max_length defaults to min(4096, the model's and tokenizer's limits).
        """
        model_type = getattr(config, "model_type", "")
        encoder = model_type in ENCODER_TYPES
        limits = [DEFAULT_MAX_LENGTH]
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        positions = getattr(text_config, "max_position_embeddings", None)
        if positions:
            limits.append(positions - (2 if model_type in POSITION_OFFSET_TYPES else 0))
        tok_limit = getattr(tokenizer, "model_max_length", None)
        if tok_limit and tok_limit < 1_000_000:  # "no limit" is stored as a huge int
            limits.append(int(tok_limit))
        model_limit = min(limits)
        if max_length is None:
            max_length = model_limit
        elif max_length > model_limit and positions and max_length > positions:
            raise RewardsmithError(
                f"max_length={max_length} exceeds the model's {positions} positions; use --max-length {model_limit} or less"
            )
        if encoder:
            return cls(input_format="pair", max_length=max_length, truncation_side=truncation_side,
                       pooling="cls", chat_template=None, base_model=base_model, prompt_tokens=prompt_tokens)
        template = chat_template or getattr(tokenizer, "chat_template", None) or CHATML_TEMPLATE
        if isinstance(template, dict):  # tokenizers with several named templates
            template = template.get("default") or next(iter(template.values()))
        return cls(input_format="chat_template", max_length=max_length, truncation_side=truncation_side,
                   pooling="last_token", chat_template=template, base_model=base_model, prompt_tokens=prompt_tokens)

    def with_score_stats(self, mean: float, std: float) -> "Manifest":
        return dataclasses.replace(self, score_mean=float(mean), score_std=float(std))

    def describe(self) -> str:
        """One line for logs: what this manifest assumes."""
        tmpl = "" if self.input_format == "pair" else (
            ", supplied ChatML template" if self.chat_template == CHATML_TEMPLATE else ", tokenizer's chat template")
        return (f"input_format={self.input_format}{tmpl}, pooling={self.pooling}, max_length={self.max_length}, "
                f"truncation_side={self.truncation_side}, prompt_tokens={self.prompt_tokens}, raw_logits={self.raw_logits}")
