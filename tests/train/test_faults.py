"""Training under faults: killed at chosen writes (a checkpoint half written, an old one half
pruned), the resumes end at the uninterrupted run's weights with every step logged once; a full
disk is one clear error that keeps the last checkpoint, and a rerun with --resume finishes.

Kills: a real `rewardsmith train` subprocess that SIGKILLs itself at the N-th write of a chosen
file (tests/train/killed_run.py), so where it dies does not depend on timing. Full disk: the
checkpoint write raises what safetensors / torch.save raise on a full disk (monkeypatched: a test
cannot count on mounting a small tmpfs).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rewardsmith.cli import main
from test_train import _config, _env, _rows, _weights

HERE = Path(__file__).parent


def _killed_run(kill: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / "killed_run.py"), kill, *args, "--no-progress"],
                          env=_env(), cwd=HERE.parents[1], capture_output=True, text=True, timeout=600)


def _latest_step(out: Path) -> int:
    from rewardsmith.train.loop import latest_checkpoint

    return json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())["step"]


def test_killed_at_chosen_writes_resumes_to_the_same_weights(tmp_path, tiny_encoder_dir):
    # Checkpoints at steps 3, 6, 9, 12, one kept: every checkpoint after the first prunes the last.
    config = _config(tmp_path, tiny_encoder_dir, checkpoint_every=3, keep_checkpoints=1)
    reference = tmp_path / "reference"
    assert main(["train", "--config", str(config), "--output_dir", str(reference), "--no-progress"]) == 0
    out = tmp_path / "out"
    args = ["--config", str(config)]

    # 1. Dies half-way through writing the optimizer state of its second checkpoint (step 6).
    run = _killed_run("optimizer.bin:2:torn", args)
    assert run.returncode == -9, run.stderr[-3000:]
    assert _latest_step(out) == 3 and (out / "checkpoints" / "tmp-step-6").is_dir()
    # 2. Resumed from 3 (the partial 6 is not read); writes and renames 6, then dies half-way
    # through pruning 3 (its first rmtree clears the partial tmp-step-6).
    run = _killed_run("rmtree:2:torn", [*args, "--resume"])
    assert run.returncode == -9 and "(step 3 of 12)" in run.stderr, run.stderr[-3000:]
    assert _latest_step(out) == 6 and (out / "checkpoints" / "step-3").is_dir()
    # 3. Resumed from 6 to the end.
    run = _killed_run("-", [*args, "--resume"])
    assert run.returncode == 0 and "(step 6 of 12)" in run.stderr, run.stderr[-3000:]

    a, b = _weights(reference), _weights(out)
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-6), key
    assert [r["step"] for r in _rows(out, "train")] == list(range(1, 13))  # each step logged once
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-12"]


def test_a_metrics_row_cut_short_is_dropped_on_resume(tmp_path):
    from rewardsmith.train.loop import _truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"split": "train", "step": 1}\n{"split": "train", "step": 2}\n{"split": "tr')
    _truncate_metrics(path, 2)
    assert path.read_text() == '{"split": "train", "step": 1}\n{"split": "train", "step": 2}\n'


# What the libraries raise when the disk fills up under them (seen on a full 64 KB tmpfs): not OSError.
SAFETENSORS_FULL = "Error while serializing: I/O error: No space left on device (os error 28)"
TORCH_SAVE_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"


@pytest.mark.parametrize("fails_at,kept", [(1, None), (5, "step-3")])
def test_a_full_disk_while_checkpointing_is_one_error_and_resume_finishes(tmp_path, tiny_encoder_dir, capsys,
                                                                          monkeypatch, fails_at, kept):
    """The disk fills up in checkpoint 3's model file (nothing kept yet: the rerun starts over,
    its metrics rows not doubled) or in checkpoint 6's optimizer state (3 is kept and the rerun
    resumes from it). Injected at the write, with the exception each library really raises."""
    import collections

    import accelerate.checkpointing
    from safetensors import SafetensorError

    config = _config(tmp_path, tiny_encoder_dir, max_steps=6, checkpoint_every=3, keep_checkpoints=2)
    out = tmp_path / "out"
    save, calls, full = accelerate.checkpointing.save, [], [False]
    usage = collections.namedtuple("usage", "total used free")

    def disk_fills_up(obj, f, *a, **k):
        calls.append(f)
        if len(calls) == fails_at:  # 3 files per checkpoint: model, optimizer, scheduler
            Path(f).write_bytes(b"\0" * 100)  # what fit before the disk filled
            full[0] = True
            if str(f).endswith(".safetensors"):
                raise SafetensorError(SAFETENSORS_FULL)
            raise RuntimeError(TORCH_SAVE_FULL)  # says nothing of the disk: only its free space tells
        return save(obj, f, *a, **k)

    disk_usage = shutil.disk_usage
    monkeypatch.setattr(accelerate.checkpointing, "save", disk_fills_up)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9, 0) if full[0] else disk_usage(p))
    assert main(["train", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the model loader's progress bar
    assert err.startswith("error: ") and ": no space left on the device" in err and "rerun with --resume" in err, err
    if kept:
        assert f"checkpoints/{kept}, is intact" in err and "tmp-step-6" in err and "RuntimeError" in err
    else:
        assert "no checkpoint was complete yet" in err and "tmp-step-3" in err and "os error 28" in err
    assert [p.name for p in (out / "checkpoints").iterdir()] == ([kept] if kept else [])  # partial one removed

    monkeypatch.setattr(accelerate.checkpointing, "save", save)
    full[0] = False
    assert main(["train", "--config", str(config), "--resume", "--no-progress"]) == 0
    assert [r["step"] for r in _rows(out, "train")] == list(range(1, 7))
