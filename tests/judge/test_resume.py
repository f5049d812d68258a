"""Kill a real run with SIGKILL midway; the restart repeats no finished request and its output
equals an uninterrupted run's: no duplicates, no gaps."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import prefer_rules, write_script


def _run_cli(out: Path, spec: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "rewardsmith", "synth", "run", "--out", str(out), "--generator", spec,
            "--judge", spec, "--n-responses", "3", "--limit-per-language", "2"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _keys(path: Path) -> list[str]:
    return [json.loads(x)["key"] for x in path.read_text().splitlines()] if path.exists() else []


def test_sigkill_then_resume_repeats_nothing_and_matches_an_uninterrupted_run(tmp_path):
    rules = prefer_rules("answer 0")
    # Reference: the same script without delay, never interrupted.
    ref_spec = write_script(tmp_path / "ref.json", rules, model_id="m")
    ref = _run_cli(tmp_path / "ref", ref_spec)
    assert ref.wait(timeout=120) == 0, ref.stderr.read()

    # 54 requests at 40 ms each take ~2 s; kill once about a third are cached.
    spec = write_script(tmp_path / "slow.json", rules, delay=0.04, log="calls.jsonl", model_id="m")
    out = tmp_path / "killed"
    proc = _run_cli(out, spec)
    deadline = time.time() + 60
    while len(_keys(tmp_path / "calls.jsonl")) < 20:
        assert proc.poll() is None, "the run ended before it could be killed; raise the delay"
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first_calls = _keys(tmp_path / "calls.jsonl")
    with sqlite3.connect(out / "cache.sqlite") as db:
        cached = {k for (k,) in db.execute("SELECT key FROM results")}
    assert 20 <= len(cached) < 54
    assert not (out / "pairs.jsonl").exists()  # no half-written final output

    (tmp_path / "calls.jsonl").rename(tmp_path / "calls-first.jsonl")
    proc = _run_cli(out, spec)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    resumed_calls = _keys(tmp_path / "calls.jsonl")
    report = json.loads(proc.stdout.read())

    assert not set(resumed_calls) & cached, "a request finished before the kill was sent again"
    assert len(resumed_calls) == len(set(resumed_calls)) == 54 - len(cached)
    assert report["requests"][spec]["cached"] == len(cached)
    assert len(first_calls) - len(cached) <= 1  # at most the one in flight at the kill was lost
    for name in ("instructions.jsonl", "responses.jsonl", "candidates.jsonl", "pairs.jsonl", "verdicts.jsonl"):
        assert (out / name).read_text() == (tmp_path / "ref" / name).read_text(), name
    ids = [json.loads(x)["id"] for x in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 12
