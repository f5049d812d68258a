"""The pipeline on real models: the embedded SmolLM2 in-process, and a real llama.cpp server on loopback.

Small on purpose (1 instruction per language, short replies): these check that real replies flow
through generation, judging, parsing, caching and resuming, not how good a 135M judge is (that
is measured by `rewardsmith judge` and reported, not asserted).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewardsmith.data.record import PreferencePair

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"
# Decoding is thousands of tiny ops; on a shared CPU one thread avoids barrier stalls (see local.py).
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _synth(out: Path, spec: str, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "rewardsmith", "synth", "run", "--out", str(out), "--generator", spec,
            "--judge", spec, "--limit-per-language", "1", "--n-responses", "2", "--max-new-tokens", "24",
            "--judge-max-tokens", "8", *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=1200)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out)


def _check_outputs(out: Path, report: dict) -> None:
    j = report["judge"]
    candidates = [json.loads(x)["id"] for x in (out / "candidates.jsonl").read_text().splitlines()]
    verdicts = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    assert [v["pair_id"] for v in verdicts] == candidates  # no gaps, no duplicates, same order
    assert j["judged"] == len(candidates) == report["pairs"]["candidates"]
    assert j["decided"] + j["ties"] + j["failures"] == j["judged"]
    assert all(v["raw"][0] is not None or "request failed" in v["failure"] for v in verdicts)
    pairs = [PreferencePair.from_dict(json.loads(x)) for x in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == j["pairs_written"] == j["decided"]
    for p in pairs:
        assert p.chosen != p.rejected and p.language in ("ja", "ko", "en") and len(p.label_info["raw"]) == 2


def test_embedded_model_generates_judges_and_measures_against_humans(shared_data, tmp_path):
    out = tmp_path / "local"
    human = shared_data / "hh-rlhf-test" / "helpful-base.test.jsonl.gz"
    spec = f"local:{MODEL}"
    report = _finish(_synth(out, spec, "--human-pairs", str(human), "--human-limit", "3"))
    assert report["instructions"]["by_language"] == {"ja": 1, "ko": 1, "en": 1}
    assert report["responses"]["kept"] + report["responses"]["empty"] + report["responses"]["failed"] == 6
    _check_outputs(out, report)
    h = report["judge"]["human_agreement"]
    assert h["pairs"] + h["skipped"] == 3
    assert h["agree"] + h["disagree"] + h["ties"] + h["failures"] == h["pairs"]
    assert report["requests"][spec]["sent"] > 0

    again = _finish(_synth(out, spec, "--human-pairs", str(human), "--human-limit", "3"))
    assert again["requests"][spec]["sent"] == 0
    assert again["judge"] == report["judge"]


def test_llama_server_run_survives_sigkill_and_resumes(tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is an optional source build (see judge/llama_server.py)")
    from rewardsmith.judge.llama_server import LlamaServer

    with LlamaServer(MODEL, log=tmp_path / "server.log", n_ctx=4096) as server:
        spec = server.spec
        out = tmp_path / "server-run"
        proc = _synth(out, spec, "--concurrency", "2", "--n-responses", "3")
        deadline = time.time() + 600
        rows = 0
        while rows < 4:  # kill once a few requests are finished and cached
            assert proc.poll() is None, "the run finished before it could be killed"
            assert time.time() < deadline
            time.sleep(0.2)
            if (out / "cache.sqlite").exists():
                try:
                    with sqlite3.connect(out / "cache.sqlite") as db:
                        rows = db.execute("SELECT count(*) FROM results").fetchone()[0]
                except sqlite3.OperationalError:
                    rows = 0
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with sqlite3.connect(out / "cache.sqlite") as db:
            before = {k for (k,) in db.execute("SELECT key FROM results")}

        report = _finish(_synth(out, spec, "--concurrency", "2", "--n-responses", "3"))
        counters = report["requests"][spec]
        assert counters["cached"] == len(before)  # every request finished before the kill came from disk
        with sqlite3.connect(out / "cache.sqlite") as db:
            after = db.execute("SELECT count(*) FROM results").fetchone()[0]
        assert after == len(before) + counters["sent"] - counters["failed"]  # each new one sent once
        _check_outputs(out, report)

        again = _finish(_synth(out, spec, "--concurrency", "2", "--n-responses", "3"))
        assert again["requests"][spec]["sent"] == 0
        assert again["judge"] == report["judge"]
