"""The package a user installs: `python -m build` makes an sdist and a wheel (built from that
sdist); the wheel installs, with every extra, into a fresh venv outside the checkout without
downloading anything; its `rewardsmith` command reports its versions and scores with a tiny model.

The fresh venv sees the project venv's third-party packages (torch, transformers, ...) through a
.pth file naming a folder of links to them, rewardsmith itself and pip left out. That is the
pinned torch "already present" as on a user's machine, for ~1 s instead of copying 1 GB of
wheels; `--system-site-packages` would not do, because the base interpreter has no torch. pip
resolves the wheel's ranges (pyproject.toml) against those packages with `--no-index`, so a range
that excludes a version in requirements.lock fails here instead of pulling another torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _venv_seeing_the_project_packages(venv: Path) -> Path:
    """A fresh venv (no pip, no rewardsmith) whose site-packages also reads this venv's other packages."""
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    ours = Path(sysconfig.get_paths()["purelib"])
    links = venv / "project-packages"
    links.mkdir()
    for entry in ours.iterdir():
        name = entry.name.lower()
        if name.startswith(("rewardsmith", "__editable__", "pip")) or name.endswith(".pth"):
            continue
        (links / entry.name).symlink_to(entry)
    purelib = _run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    (Path(purelib.stdout.strip()) / "project-packages.pth").write_text(f"{links}\n")
    return venv / "bin"


@pytest.mark.integration  # builds, makes a venv and installs: ~30 s, so `make test`, not test-fast
def test_the_built_wheel_installs_and_scores_outside_the_checkout(tmp_path, encoder_rm_dir):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT], cwd=tmp_path)
    (sdist,), (wheel,) = dist.glob("rewardsmith-*.tar.gz"), dist.glob("rewardsmith-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rewardsmith/synth/seeds/ja.jsonl" in names  # package data travels with the code

    bin_dir = _venv_seeing_the_project_packages(tmp_path / "venv")
    # pip of this venv installs into the fresh one; nothing may come from an index
    _run([sys.executable, "-m", "pip", "--python", bin_dir / "python", "install", "--no-index", "--quiet",
          f"{wheel}[all]"], cwd=tmp_path)
    where = _run([bin_dir / "python", "-c", "import rewardsmith; print(rewardsmith.__file__)"], cwd=tmp_path)
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout  # the wheel's copy, not the checkout's

    version = _run([bin_dir / "rewardsmith", "--version"], cwd=tmp_path).stdout
    assert version.startswith("rewardsmith ") and "torch 2." in version and "transformers " in version

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "How do I boil an egg?", "response": "Nine minutes in boiling water."}) + "\n"
                    + json.dumps({"prompt": "日本の首都は？", "chosen": "東京です。", "rejected": "知りません。"}) + "\n",
                    encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    _run([bin_dir / "rewardsmith", "score", encoder_rm_dir, rows, "-o", out, "--precision", "fp32"], cwd=tmp_path)
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["line"] for row in scored] == [1, 2]
    assert isinstance(scored[0]["score"], float) and scored[1]["chosen_score"] != scored[1]["rejected_score"]
