"""Write pairs in the project's own layout: JSONL (one `PreferencePair.to_dict()` per line) or Parquet.

Both read back through `load_pairs` unchanged. In Parquet, `label_info` is stored as a JSON string:
its keys differ between sources and Arrow needs one type per column.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from rewardsmith.data.record import PreferencePair
from rewardsmith.errors import RewardsmithError


def save_pairs(pairs: list[PreferencePair], path: str | Path) -> Path:
    """Write `pairs` to `path` (.jsonl, .jsonl.gz or .parquet) and return it."""
    path = Path(path)
    name = path.name.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith((".jsonl", ".jsonl.gz")):
        # backslashreplace: a lone surrogate (kept in label_info, say) becomes the JSON escape "\ud800"
        # it was read from, instead of failing the write; surrogates only occur inside JSON strings.
        raw = "".join(p.to_json() + "\n" for p in pairs).encode("utf-8", "backslashreplace")
        path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
        return path
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = []
        for p in pairs:
            d = p.to_dict()
            d["label_info"] = json.dumps(d["label_info"], ensure_ascii=False)
            d.setdefault("rejected_prompt", None)
            rows.append(d)
        message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        schema = pa.schema([("id", pa.string()), ("prompt", message), ("chosen", pa.string()),
                            ("rejected", pa.string()), ("margin", pa.float64()), ("language", pa.string()),
                            ("source", pa.string()), ("subset", pa.string()), ("label_info", pa.string()),
                            ("rejected_prompt", message), ("objective", pa.string()), ("labeler", pa.string())])
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
        return path
    raise RewardsmithError(f"{path}: write .jsonl, .jsonl.gz or .parquet (got {''.join(path.suffixes) or 'no suffix'})")
