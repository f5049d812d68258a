"""Tiny random models and tokenizers, built in-process: no hub, no network, seconds on a CPU.

`tiny_encoder(dir)` -> a 2-layer BERT reward model with a [CLS]/[SEP]/[PAD] tokenizer (the Korean
card's shape). `tiny_decoder(dir)` -> a 2-layer Llama reward model whose tokenizer has NO pad
token and a ChatML chat template (the Japanese card's family, with the pad == eos trap).
`tiny_policy(dir)` -> a 2-layer Llama causal LM for RLHF trainer tests.
`tiny_decoder_pad_is_eos(dir)` -> a Llama-3-style foreign reward model whose turns end in eos and
whose tokenizer pads with it. Each saves an ordinary Hugging Face folder and returns its path.
"""

from __future__ import annotations

from pathlib import Path

# A little text in each first-class language so the byte-level BPE learns some merges.
CORPUS = [
    "Human: How do I boil an egg? Assistant: Put it in boiling water for nine minutes.",
    "The quick brown fox jumps over the lazy dog. Reward models score responses.",
    "栄養バランスの良い食事とは何ですか？ 主食、主菜、副菜をそろえることです。",
    "日本語の文章も正しく扱えるようにします。ありがとうございます。",
    "광화문에 어떻게 가나요? 지하철 5호선 광화문역에서 내리세요.",
    "한국어 문장도 처리할 수 있어야 합니다. 감사합니다.",
] * 20

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _bpe(special: list[str], vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return tok


def tiny_encoder(out_dir: str | Path, seed: int = 0) -> Path:
    """A BERT-style reward model: `[CLS] prompt [SEP] response [SEP]`, pad id distinct."""
    import torch
    from tokenizers import processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    out = Path(out_dir)
    tok = _bpe(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        model_max_length=512,
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=512, num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_decoder(out_dir: str | Path, seed: int = 0, arch: str = "llama") -> Path:
    """A Llama-style reward model whose tokenizer has no pad token (pad must not become eos).
    arch="gemma3": Gemma 3's layout instead (the embedded gemma-3-270m's family), with a
    sliding window of 8 tokens on three of its four layers, so short test inputs cross it."""
    import torch
    from transformers import (Gemma3TextConfig, Gemma3TextForSequenceClassification, LlamaConfig,
                              LlamaForSequenceClassification, PreTrainedTokenizerFast)

    out = Path(out_dir)
    tok = _bpe(["<s>", "</s>", "<|im_start|>", "<|im_end|>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", model_max_length=2048,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=128, max_position_embeddings=2048, num_labels=1,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=None,
    )
    if arch == "gemma3":
        config = Gemma3TextConfig(
            vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=1, head_dim=16, intermediate_size=128, max_position_embeddings=2048,
            sliding_window=8, layer_types=["sliding_attention"] * 3 + ["full_attention"], num_labels=1,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=None,
        )
    model = (Gemma3TextForSequenceClassification if arch == "gemma3" else LlamaForSequenceClassification)(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_policy(out_dir: str | Path, seed: int = 0) -> Path:
    """A 2-layer Llama causal LM with the decoder's tokenizer and ChatML template: a random policy
    for RLHF trainer tests (it samples tokens, so completions are gibberish, which is all they need)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    tok = _bpe(["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<pad>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        model_max_length=2048)
    tokenizer.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=128, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# Llama-3's way: every turn ends with the eos token and nothing after it.
EOS_TURN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_decoder_pad_is_eos(out_dir: str | Path, seed: int = 0) -> Path:
    """A foreign decoder reward model in the Llama-3 mould, saved without a manifest: its eos
    (<|im_end|>) closes every turn, the rendered text ends with it, and the tokenizer pads with it."""
    from transformers import AutoConfig, AutoTokenizer

    out = tiny_decoder(out_dir, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    tokenizer.chat_template = EOS_TURN_TEMPLATE
    tokenizer.save_pretrained(out)
    config = AutoConfig.from_pretrained(out)
    config.eos_token_id = config.pad_token_id = tokenizer.eos_token_id
    config.save_pretrained(out)
    return out
