"""Shared fixtures: tiny in-process models, and the path to ../shared/data when present.

How the suite is run (Makefile): `make test` runs every test, all but the `recipe` tier on two
pytest-xdist workers, then the `recipe` tier in one process on every core; CI runs `make test`
alone. `make test-fast` leaves out the `integration` and `recipe` tiers; `make test-recipe` runs
the `recipe` tier alone. A new
test needs no registration: it runs in `make test`, and in `make test-fast` unless it is marked
`integration` (real packaged models or servers) or `recipe` (a whole recipe on real models:
minutes of every core). Session fixtures (`scope="session"`) are built once per xdist worker:
keep them to what takes seconds, or make them safe to build twice at once, as
`models.embedded.prepare` is (a lock file; the second waits and reuses the first's folder).
"""

from __future__ import annotations

import errno
import io
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so tests can `import tiny_models`

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REWARDSMITH_SHARED_DATA", ROOT.parent / "shared" / "data"))
FIXTURES = Path(__file__).parent / "fixtures"

# Embedded models are converted once per checkout into <repo>/.cache and shared by every test module.
os.environ.setdefault("REWARDSMITH_HOME", str(ROOT / ".cache" / "rewardsmith"))

# Two xdist workers on a 2-core machine: one torch thread each, and for the processes they start
# (OMP_NUM_THREADS is read when torch is imported, which no test has done yet). A second OpenMP
# thread per process would only spin on barriers around the tiny models' matmuls, against the
# other worker (docs/benchmarks.md, "tiny-model tests").
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


def pytest_collection_modifyitems(config, items):
    """Integration tests first: the scheduler hands tests out in this order as workers free up,
    so the longest start early and the short ones fill the gaps, instead of one long test
    running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """A bare Accelerator() takes the precision an earlier test's train() chose ("auto" = bf16 on a
    CPU with avx512_bf16 or AMX, fp32 on AVX2), so a test would pass or fail by the order it ran in
    and the CPU. Each starts clean (once accelerate is loaded: tests that never use it never import it)."""
    if "accelerate.state" in sys.modules:
        from rewardsmith.train.loop import fresh_accelerate_state

        fresh_accelerate_state()


@pytest.fixture
def full_disk(monkeypatch):
    """`full_disk(folder, free_bytes)`: files opened for writing under `folder` (through open or
    Path.open) share `free_bytes` of space; then a write stores what fits and fails with ENOSPC,
    as on a real full disk. Injected at the write, not by mounting a small tmpfs (needs root)."""
    real_open = io.open
    disks: list[tuple[Path, list[int]]] = []

    class Capped(io.FileIO):
        def __init__(self, path, mode, free):
            super().__init__(path, mode)
            self.free = free

        def write(self, data) -> int:
            if self.free[0] <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            n = super().write(bytes(data[: self.free[0]]))
            self.free[0] -= n
            return n

    def capped_open(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None, *args, **kwargs):
        writing = any(c in mode for c in "wax+")
        for folder, free in reversed(disks) if writing and isinstance(file, (str, os.PathLike)) else ():
            if Path(file).resolve().is_relative_to(folder):
                raw = Capped(file, mode.replace("b", "").replace("t", ""), free)
                # "r+b" (a resume cutting a torn last line) reads as well as writes.
                buffered = io.BufferedRandom(raw) if "+" in mode else io.BufferedWriter(raw)
                return buffered if "b" in mode else io.TextIOWrapper(buffered, encoding=encoding or "utf-8",
                                                                     errors=errors, newline=newline)
        return real_open(file, mode, buffering, encoding, errors, newline, *args, **kwargs)

    def fill(folder: Path, free_bytes: int) -> None:
        disks.append((Path(folder).resolve(), [free_bytes]))

    monkeypatch.setattr(io, "open", capped_open)
    monkeypatch.setattr("builtins.open", capped_open)
    yield fill
    disks.clear()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: CI and developer machines have it; tests that need it say so by using this."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: the shared data sets must sit beside the repository")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    import tiny_models

    return tiny_models.tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory) -> Path:
    import tiny_models

    return tiny_models.tiny_decoder(tmp_path_factory.mktemp("tiny-decoder"))


@pytest.fixture(scope="session")
def embedded_model():
    """`embedded_model(name) -> Path`: an embedded base model prepared (converted once) in the cache."""
    from rewardsmith.models.embedded import prepare

    return prepare


def _saved(base: Path, out: Path) -> Path:
    from rewardsmith.models import init_reward_model, save_reward_model

    return save_reward_model(init_reward_model(base), out, score_stats=(0.25, 2.0))


@pytest.fixture(scope="session")
def decoder_rm_dir(tiny_decoder_dir, tmp_path_factory) -> Path:
    """A tiny Llama reward model (chat template input) saved with calibration statistics."""
    return _saved(tiny_decoder_dir, tmp_path_factory.mktemp("decoder-rm"))


@pytest.fixture(scope="session")
def encoder_rm_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """A tiny BERT reward model (`prompt [SEP] response` input) saved with calibration statistics."""
    return _saved(tiny_encoder_dir, tmp_path_factory.mktemp("encoder-rm"))
