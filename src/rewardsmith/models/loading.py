"""Load, initialise and save reward models: a transformers model with a one-number head + manifest.

    rm = init_reward_model("gemma-3-270m", max_length=4096)       # base LM -> untrained reward model
    save_reward_model(rm, "out/rm")                               # config.json + safetensors + rewardsmith.json
    rm = load_reward_model("out/rm")                              # any folder or hub id, same code path
    rewards = reward_forward(rm.model, **collate(ids, rm.pad_id)) # (B,) float32

Names: a path that exists is a local folder; a bare name without "/" ("gemma-3-270m") is an
embedded base model made by `rewardsmith.models.embedded.prepare`; anything else is a hub id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardsmith.errors import RewardsmithError
from rewardsmith.models.manifest import MANIFEST_NAME, Manifest

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PAD_TOKEN = "<|pad|>"  # added when a tokenizer has no pad token, or pads with eos


@dataclass
class RewardModel:
    """A reward model ready to score: outputs one raw reward per sequence."""

    model: Any  # a transformers *ForSequenceClassification with num_labels == 1
    tokenizer: Any
    manifest: Manifest
    path: Path | None = None

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id


def locate_model(name_or_path: str | Path) -> str:
    """A local folder, an embedded model (prepared into the cache), or a hub id, as a string."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise RewardsmithError(f"{path}: no config.json; give a Hugging Face model folder")
        return str(path)
    name = str(name_or_path)
    if "/" not in name:
        try:
            from rewardsmith.models.embedded import prepare
        except ImportError:  # pragma: no cover - the embedded module ships with the package
            raise RewardsmithError(f"{name}: no such folder, and embedded models are unavailable") from None
        return str(prepare(name))
    # A hub id is "namespace/name": a missing local path (absolute, ./, ~, or deeper) is a typo, and
    # transformers would only say the repo id is malformed.
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or name.endswith("/"):
        raise RewardsmithError(f"{name}: no such folder (a hub id is written namespace/name)")
    return name  # a hub id: transformers fetches it (needs network access)


def _eos_ids(config, tokenizer) -> set[int]:
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(config.get_text_config(), "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def _set_reward_config(model, tokenizer) -> None:
    """num_labels=1 and problem_type="regression": `pipeline("text-classification")` then applies
    no function by default (it applies a sigmoid to one-label models without a problem type)."""
    config = model.config
    config.num_labels = 1
    config.problem_type = "regression"
    config.id2label = {0: "reward"}
    config.label2id = {"reward": 0}
    _mark_segment_ids(config, tokenizer)
    if tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
        config.get_text_config().pad_token_id = tokenizer.pad_token_id


def _mark_segment_ids(config, tokenizer) -> None:
    """Record in the config whether the model sees token_type_ids (see `_segment_ids`).

    Only when the tokenizer emits them (BertTokenizer does; the XLM-R tokenizer of
    multilingual-e5 does not, so its BERT model sees all zeros) and the model has two types.
    """
    emits = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    if emits and getattr(config, "type_vocab_size", 1) > 1 and tokenizer.sep_token_id is not None:
        config.segment_sep_token_id = tokenizer.sep_token_id
    elif hasattr(config, "segment_sep_token_id"):
        del config.segment_sep_token_id


def _model_dtype(dtype):
    import torch

    if dtype is None:
        return torch.float32  # fp32 master weights; the scorer autocasts to bf16 where it pays
    if isinstance(dtype, str):
        try:
            return {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                    "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}[dtype]
        except KeyError:
            raise RewardsmithError(f"dtype={dtype!r}: use fp32, bf16 or fp16") from None
    return dtype


def load_reward_model(name_or_path: str | Path, *, dtype=None, device=None,
                      trust_remote_code: bool = False) -> RewardModel:
    """Load a reward model from a folder, an embedded name or a hub id, in eval mode.

    Without a rewardsmith.json (a foreign reward model) the manifest is `Manifest.for_model`'s
    defaults and a one-line notice says what was assumed. Raises RewardsmithError when the
    model has more than one output or the folder is not a model.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = locate_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, dtype=_model_dtype(dtype), trust_remote_code=trust_remote_code, use_safetensors=True)
    except OSError as e:
        raise RewardsmithError(f"{name_or_path}: cannot load ({str(e).splitlines()[0]}); "
                               "give a local model folder (hub ids need network access)") from None
    if model.config.num_labels != 1:
        raise RewardsmithError(f"{name_or_path}: config has num_labels={model.config.num_labels}; "
                               "a reward model has one output (num_labels=1)")
    manifest_file = Path(source) / MANIFEST_NAME
    if not manifest_file.is_file():
        from transformers.utils import cached_file

        found = cached_file(source, MANIFEST_NAME, _raise_exceptions_for_missing_entries=False)
        manifest_file = Path(found) if found else manifest_file
    if manifest_file.is_file():
        manifest = Manifest.load(manifest_file.parent)
    else:
        manifest = Manifest.for_model(model.config, tokenizer, base_model=str(name_or_path))
        log.warning("%s has no %s; assuming %s", name_or_path, MANIFEST_NAME, manifest.describe())
    if tokenizer.pad_token_id is None:
        # Scoring pools by the attention mask, so any id works as filler; eos is the usual one.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        log.warning("%s: tokenizer has no pad token; padding with %r (masked out, never read)",
                    name_or_path, tokenizer.pad_token)
    if model.config.get_text_config().pad_token_id is None:
        model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
        model.config.pad_token_id = tokenizer.pad_token_id
    _mark_segment_ids(model.config, tokenizer)
    model.eval()
    if device is not None:
        model.to(device)
    path = Path(source) if Path(source).exists() else None
    return RewardModel(model=model, tokenizer=tokenizer, manifest=manifest, path=path)


def init_reward_model(base: str | Path, *, max_length: int | None = None, truncation_side: str = "left",
                      chat_template: str | None = None, dtype=None, trust_remote_code: bool = False,
                      prompt_tokens: int = 0) -> RewardModel:
    """A fresh reward model from a base LM or encoder: the same backbone plus an untrained 1-output head.

    Adds a real pad token distinct from eos when the tokenizer has none (or pads with eos) and
    grows the embeddings for it; gives decoders without a chat template `chat_template` or the
    supplied ChatML one; picks input format and pooling by architecture (see Manifest.for_model).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = locate_model(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=1, dtype=_model_dtype(dtype), trust_remote_code=trust_remote_code,
            use_safetensors=True)
    except OSError as e:
        raise RewardsmithError(f"{base}: cannot load ({str(e).splitlines()[0]}); give a local model folder "
                               "or an embedded name (multilingual-e5-small, gemma-3-270m, smollm2-135m-instruct)") from None
    except ValueError as e:  # an architecture transformers has no sequence-classification class for
        raise RewardsmithError(f"{base}: {str(e).splitlines()[0]}") from None
    manifest = Manifest.for_model(model.config, tokenizer, max_length=max_length, truncation_side=truncation_side,
                                  chat_template=chat_template, base_model=str(base), prompt_tokens=prompt_tokens)
    if manifest.input_format == "chat_template":
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id in _eos_ids(model.config, tokenizer):
            # pad == eos makes "last non-pad token" pooling skip a real final eos (the Llama trap).
            tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
            rows = model.get_input_embeddings().num_embeddings
            if tokenizer.pad_token_id >= rows:
                model.resize_token_embeddings(tokenizer.pad_token_id + 1, mean_resizing=False)
        tokenizer.chat_template = manifest.chat_template
    elif tokenizer.pad_token_id is None:
        raise RewardsmithError(f"{base}: encoder tokenizer has no pad token; set pad_token in tokenizer_config.json")
    tokenizer.truncation_side = manifest.truncation_side
    tokenizer.model_max_length = manifest.max_length
    _set_reward_config(model, tokenizer)
    model.eval()
    return RewardModel(model=model, tokenizer=tokenizer, manifest=manifest, path=None)


def save_reward_model(rm: RewardModel, out_dir: str | Path, *, score_stats: tuple[float, float] | None = None) -> Path:
    """Write config.json (num_labels=1, problem_type="regression"), safetensors weights, tokenizer
    files (with the chat template) and rewardsmith.json into `out_dir`; returns it.

    score_stats: (mean, std) of the model's scores on its training data, kept for calibration.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if score_stats is not None:
        rm.manifest = rm.manifest.with_score_stats(*score_stats)
    _set_reward_config(rm.model, rm.tokenizer)
    if rm.manifest.chat_template:
        rm.tokenizer.chat_template = rm.manifest.chat_template
    rm.model.save_pretrained(out)
    rm.tokenizer.save_pretrained(out)
    rm.manifest.save(out)
    rm.path = out
    return out


def reward_forward(model, input_ids: "torch.Tensor", attention_mask: "torch.Tensor", *,
                   right_padded: bool | None = None) -> "torch.Tensor":
    """Rewards (B,) in float32 for a padded batch, under left or right padding.

    Decoders: the backbone's hidden state at each row's last real token (the rightmost 1 in the
    mask, whatever the pad id) goes through the score head; left-padded rows get position ids
    that start at 0 on their first real token, so padding never changes a score.
    Encoders: the model's own [CLS] head, on rows moved to right padding.
    Either way the head's last linear layer runs in fp32 (see `_fp32_linear`).
    right_padded: what the caller knows of its batch (`collate`'s default is right padding);
    None reads it from the mask. Under torch.compile a given value avoids a graph break.
    """
    import torch

    head = getattr(model, "score", None)
    if head is None:  # encoders: the model's own [CLS] pooler + classifier, which reads column 0,
        # so rows are moved to right padding first (a stable sort puts real tokens before pads).
        order = torch.argsort(1 - attention_mask, dim=1, stable=True)
        input_ids, attention_mask = input_ids.gather(1, order), attention_mask.gather(1, order)
        extras = _segment_ids(model.config, input_ids)
        classifier = getattr(model, "classifier", None)  # BERT: a Linear; RoBERTa/XLM-R: .out_proj
        out = getattr(classifier, "out_proj", classifier)
        hook = out.register_forward_hook(lambda m, args, _: _fp32_linear(m, args[0])) \
            if isinstance(out, torch.nn.Linear) else None
        try:
            return model(input_ids=input_ids, attention_mask=attention_mask, **extras).logits[:, 0].float()
        finally:
            if hook is not None:
                hook.remove()
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    columns = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (columns * attention_mask).argmax(-1)  # (B,) index of the last real token
    mask = attention_mask
    if right_padded is None:
        right_padded = bool((attention_mask.sum(-1) == last + 1).all())
    if right_padded and _is_causal(model.config):
        # Right padding (or none): under causal attention a real token never sees the pads that
        # follow it, and its position is its column, so neither the mask nor position ids change
        # anything that is read. Without them SDPA runs its is_causal kernel (it skips the upper
        # half of the score matrix) and no (B, 1, T, T) mask is built. Position ids must go too:
        # transformers reads a repeated position as a packed sequence and builds the mask again.
        mask = position_ids = None
    hidden = model.base_model(input_ids=input_ids, attention_mask=mask,
                              position_ids=position_ids, use_cache=False).last_hidden_state  # (B, T, H)
    pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
    return score_head(model, pooled)


def score_head(model, pooled: "torch.Tensor") -> "torch.Tensor":
    """A decoder's rewards (B,) in float32 from the pooled hidden states (B, H): its score head."""
    import torch

    head = model.score
    if isinstance(head, torch.nn.Linear):
        return _fp32_linear(head, pooled)[:, 0]
    return head(pooled)[:, 0].float()  # a wrapped head (peft modules_to_save): as it computes


def is_causal_decoder(model) -> bool:
    """True for a decoder reward model (a `score` head on the last real token) with causal attention."""
    return getattr(model, "score", None) is not None and _is_causal(model.config)


def _is_causal(config) -> bool:
    """True for decoders whose attention is causal (EmbeddingGemma-style bidirectional ones are not)."""
    text = config.get_text_config()
    return not (getattr(text, "use_bidirectional_attention", False) or getattr(text, "is_encoder_decoder", False))


def _fp32_linear(linear, x: "torch.Tensor") -> "torch.Tensor":
    """`linear(x)` in fp32 whatever the weights' dtype or autocast. A reward read off a bf16 output
    keeps 8 significant bits (steps of 1/64 near 2), so different answers tied exactly: 5 of 300
    held-out pairs for a trained e5-small in bf16, 0 with this (as in fp32), at the same speed."""
    import torch

    with torch.autocast(x.device.type, enabled=False):
        bias = None if linear.bias is None else linear.bias.float()
        return torch.nn.functional.linear(x.float(), linear.weight.float(), bias)


def _segment_ids(config, input_ids: "torch.Tensor") -> dict:
    """token_type_ids for models whose tokenizer emits them (BERT): its pair encoding gives 1 to
    every token after the first [SEP] (`[CLS] a [SEP] b [SEP]` -> 0...0 1...1), and the model must
    see the same here. init/load set config.segment_sep_token_id when this applies."""
    sep = getattr(config, "segment_sep_token_id", None)
    if sep is None:
        return {}
    is_sep = (input_ids == sep).long()
    return {"token_type_ids": ((is_sep.cumsum(-1) - is_sep) > 0).long()}  # a [SEP] strictly before t
