"""On-disk score cache: (model fingerprint, input) -> reward, so adding a model to a table does not
rescore the others and rerunning an evaluation costs no forward pass.

One SQLite file (stdlib, crash-safe, several readers/writers at once). Keys:
- `fingerprint(folder, precision)`: sha256 over every top-level file of the model folder (weights,
  config, tokenizer, the rewardsmith.json manifest) — full content, so a retrained model with the
  same shapes never reuses stale scores — plus the precision, how it is computed (`SCORING`) and
  the rewardsmith version (the input format lives in code). Hashing a 1 GB safetensors takes ~1 s,
  so each file's digest is memoised by (path, size, mtime_ns): a rerun fingerprints instantly.
- `input_key(conversation, response)`: sha256 of the canonical JSON of what the scorer encodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from rewardsmith import __version__

# How a score at a given precision is computed. Part of every fingerprint: change it whenever
# that changes, so scores computed the old way are never mixed with new ones. (Before this tag,
# "bf16" meant fp32 weights under bf16 autocast and a reward rounded to bf16.)
SCORING = "weights loaded in the precision's dtype; the head's last linear in fp32"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (model TEXT NOT NULL, input TEXT NOT NULL, score REAL NOT NULL,
                                   PRIMARY KEY (model, input)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_digests (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, sha256 TEXT);
"""


def default_cache_dir() -> Path:
    """$REWARDSMITH_HOME/eval-cache, else ~/.cache/rewardsmith/eval-cache."""
    home = os.environ.get("REWARDSMITH_HOME") or Path.home() / ".cache" / "rewardsmith"
    return Path(home) / "eval-cache"


def input_key(conversation: Sequence[dict], response: str) -> str:
    """Content key of one scorer input; the same text always maps to the same key."""
    blob = json.dumps([list(conversation), response], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ScoreCache:
    """Scores by (model fingerprint, input key). Use as a context manager or call `close()`."""

    def __init__(self, cache_dir: str | Path | None = None):
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "scores.sqlite"
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def __enter__(self) -> "ScoreCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def fingerprint(self, folder: str | Path, *, precision: str) -> str:
        """sha256 identifying a model folder's exact content, scored at `precision`."""
        folder = Path(folder).resolve()
        h = hashlib.sha256(f"rewardsmith {__version__}\nprecision {precision}\nscoring {SCORING}\n".encode())
        for f in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            h.update(f"{f.name}\0{self._file_digest(f)}\n".encode())
        return h.hexdigest()

    def _file_digest(self, f: Path) -> str:
        st = f.stat()
        row = self._db.execute("SELECT size, mtime_ns, sha256 FROM file_digests WHERE path = ?", (str(f),)).fetchone()
        if row and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return row[2]
        with open(f, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?)",
                             (str(f), st.st_size, st.st_mtime_ns, digest))
        return digest

    def get(self, model: str, keys: Iterable[str]) -> dict[str, float]:
        """The cached scores among `keys` for `model` (missing keys are simply absent)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, float] = {}
        for i in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            part = keys[i:i + 500]
            q = f"SELECT input, score FROM scores WHERE model = ? AND input IN ({','.join('?' * len(part))})"
            found.update(self._db.execute(q, (model, *part)).fetchall())
        return found

    def put(self, model: str, items: dict[str, float]) -> None:
        """Store scores; committed at once so an interrupted run keeps what it finished."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?)",
                                 [(model, k, float(v)) for k, v in items.items()])
