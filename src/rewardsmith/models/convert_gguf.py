"""A GGUF file (gemma-3-270m, SmolLM2-135M-Instruct) into a Hugging Face safetensors folder.

transformers dequantises a GGUF into a float model (`from_pretrained(dir, gguf_file=...)`,
about a minute for gemma-3-270m on 2 cores) but that model carries a GGUF quantization
config and refuses `save_pretrained`. So the weights are moved into a fresh model built from
the same config and saved once, as fp32 (Q4_K/Q4_1 values times their scales are not exact
in bf16). The tokenizer also comes from the GGUF; its chat template, when the file has one,
is read from the GGUF metadata, because transformers' GGUF tokenizer loader drops it.
"""

from __future__ import annotations

import math
from pathlib import Path

# The conversion check: ja / ko / en text a base LM should find unsurprising.
CHECK_TEXTS = (
    "日本の首都は東京です。東京には多くの人が住んでいます。",
    "대한민국의 수도는 서울입니다. 서울에는 많은 사람이 살고 있습니다.",
    "The capital of France is Paris. Many people live in Paris.",
)


# GGUF metadata value types (gguf spec): scalar type id -> struct format; 8 is a string, 9 an array
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def chat_template(gguf_file: Path) -> str | None:
    """The `tokenizer.chat_template` string stored in a GGUF file, or None.

    Scans the key/value header directly: `gguf.GGUFReader` builds every field, including the
    262k-entry token arrays, and takes 15-30 s on gemma-3-270m for this one string.
    Layout (v2/v3): "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv times
    (string key, u32 type, value); a string is u64 length + UTF-8 bytes; an array is
    u32 element type, u64 count, elements.
    """
    import mmap
    import struct

    with open(gguf_file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        magic, version, _, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
        if magic != b"GGUF" or version < 2:
            raise ValueError(f"{gguf_file}: not a GGUF v2+ file (magic {magic!r}, version {version})")
        pos = 24

        def string() -> str:
            nonlocal pos
            (n,) = struct.unpack_from("<Q", buf, pos)
            pos += 8 + n
            return buf[pos - n : pos].decode("utf-8")

        def skip(kind: int) -> None:
            nonlocal pos
            if kind == 8:
                (n,) = struct.unpack_from("<Q", buf, pos)
                pos += 8 + n
            elif kind == 9:
                item, count = struct.unpack_from("<IQ", buf, pos)
                pos += 12
                if item in _SCALARS:
                    pos += count * struct.calcsize(_SCALARS[item])
                else:
                    for _ in range(count):
                        skip(item)
            else:
                pos += struct.calcsize(_SCALARS[kind])

        for _ in range(n_kv):
            key = string()
            (kind,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            if key == "tokenizer.chat_template" and kind == 8:
                return string()
            skip(kind)
    return None


def convert(gguf_file: Path, out_dir: Path) -> dict:
    """Write config.json, model.safetensors and tokenizer files to `out_dir`; return the check.

    The check reloads the saved tokenizer (same ids as the GGUF's, decode(encode(text)) ==
    text for ja/ko/en), compares the saved model, loaded the ordinary way, with the
    GGUF-loaded model (logits on the same text), reports the per-token loss of that text as a sanity check of
    the weights themselves, and loads the folder as a one-label sequence classifier.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    template = chat_template(gguf_file)
    if template is not None:
        tokenizer.chat_template = template
    source = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    # the GGUF loader leaves model_max_length at "infinite"; the context length is the honest limit
    tokenizer.model_max_length = source.config.max_position_embeddings
    tokenizer.save_pretrained(out_dir)

    config_dict = source.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        config_dict.pop(key, None)
    config = AutoConfig.for_model(**config_dict)
    config.architectures = [type(source).__name__]
    with torch.device("meta"):  # no random init of a 168 M-value embedding just to overwrite it
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(source.state_dict(), strict=True, assign=True)
    fresh.tie_weights()
    fresh.save_pretrained(out_dir)
    del fresh

    return _check(source, tokenizer, out_dir)


def _check(source, tokenizer, out_dir: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    saved = AutoTokenizer.from_pretrained(out_dir)
    round_trip = all(
        saved(text)["input_ids"] == tokenizer(text)["input_ids"]
        and saved.decode(saved(text)["input_ids"], skip_special_tokens=True) == text
        for text in CHECK_TEXTS
    )
    converted = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    max_diff, argmax_agree, losses = 0.0, 0.0, {}
    with torch.inference_mode():
        for text in CHECK_TEXTS:
            ids = saved(text, return_tensors="pt")["input_ids"]  # (1, T)
            ref = source(ids).logits[0]  # (T, vocab)
            ours = converted(ids).logits[0]
            max_diff = max(max_diff, float((ref - ours).abs().max()))
            argmax_agree += float((ref.argmax(-1) == ours.argmax(-1)).float().mean()) / len(CHECK_TEXTS)
            # mean next-token loss in nats; a uniform guess is ln(vocab) (12.5 for gemma)
            loss = torch.nn.functional.cross_entropy(ours[:-1], ids[0, 1:])
            losses[text] = round(float(loss), 4)
    del converted

    classifier = AutoModelForSequenceClassification.from_pretrained(out_dir, num_labels=1).eval()
    scores = []
    with torch.inference_mode():
        for text in CHECK_TEXTS:
            scores.append(float(classifier(**saved(text, return_tensors="pt")).logits[0, 0]))
    return {
        "reference": "the GGUF loaded by transformers (gguf_file=...), fp32, same token ids",
        "texts": list(CHECK_TEXTS),
        "tokenizer_round_trip": round_trip,
        "logits_max_abs_diff": max_diff,
        "next_token_argmax_agreement": round(argmax_agree, 6),
        "next_token_loss": losses,
        "uniform_loss": round(math.log(source.config.vocab_size), 4),
        "sequence_classification_class": type(classifier).__name__,
        "sequence_classification_scores": scores,
    }
