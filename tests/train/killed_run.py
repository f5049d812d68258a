"""`python killed_run.py KILL ARGS...`: `rewardsmith train ARGS` that SIGKILLs itself at a chosen write.

KILL is `NAME:N` or `NAME:N:torn`, or `-` (never). NAME is a file the run writes (model.safetensors,
optimizer.bin, custom_checkpoint_0.pkl, trainer_state.json), `rename` (a checkpoint folder renamed
into place) or `rmtree` (a folder removed); N counts those in this process. Plain: killed just
before the N-th. torn: half of it done -- the file written and cut to half its bytes, half the
folder's files removed -- then killed, as a kill in the middle of that write would leave it.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import sys

import accelerate.checkpointing

NAME, N, *MODE = sys.argv[1].split(":") if ":" in sys.argv[1] else ("-", "0")
seen = 0


def at(what: str, do, half):
    """Runs `do` (the write); at the chosen one dies before it, or after `half` of it (torn)."""
    global seen
    if what == NAME:
        seen += 1
        if seen == int(N):
            if MODE == ["torn"]:
                half()
            os.kill(os.getpid(), signal.SIGKILL)
    return do()


def cut(path) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def remove_half(path) -> None:
    files = sorted(p for p in pathlib.Path(path).rglob("*") if p.is_file())
    for p in files[: len(files) // 2]:
        p.unlink()


save, write_text, rename, rmtree = (accelerate.checkpointing.save, pathlib.Path.write_text, pathlib.Path.rename,
                                    shutil.rmtree)
accelerate.checkpointing.save = lambda obj, f, *a, **k: at(
    pathlib.Path(f).name, lambda: save(obj, f, *a, **k), lambda: (save(obj, f, *a, **k), cut(f)))
pathlib.Path.write_text = lambda self, *a, **k: at(
    self.name, lambda: write_text(self, *a, **k), lambda: (write_text(self, *a, **k), cut(self)))
pathlib.Path.rename = lambda self, target: at("rename", lambda: rename(self, target), lambda: None)
shutil.rmtree = lambda path, *a, **k: at("rmtree", lambda: rmtree(path, *a, **k), lambda: remove_half(path))

from rewardsmith.cli import main  # noqa: E402

sys.exit(main(["train", *sys.argv[2:]]))
