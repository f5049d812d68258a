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


def _synth(out: Path, spec: str, *extra: str, judge: str | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "rewardsmith", "synth", "run", "--out", str(out), "--generator", spec,
            "--judge", judge or spec, "--limit-per-language", "1", "--n-responses", "2", "--max-new-tokens", "24",
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
    if j["mode"] == "logprobs":  # every readable order keeps its probabilities, normalised over A/B/C
        for v in verdicts:
            read = [p for p in (v["probs"]["order_1"], v["probs"]["order_2"]) if p is not None]
            assert len(read) == 2 or v["failure"]
            assert all(abs(sum(p.values()) - 1) < 1e-4 for p in read)


def _sent(report: dict) -> int:
    return sum(c["sent"] for c in report["requests"].values())


def test_embedded_model_generates_judges_and_measures_against_humans(shared_data, tmp_path):
    out = tmp_path / "local"
    human = shared_data / "hh-rlhf-test" / "helpful-base.test.jsonl.gz"
    spec = f"local:{MODEL}"
    report = _finish(_synth(out, spec, "--human-pairs", str(human), "--human-limit", "3"))
    assert report["instructions"]["by_language"] == {"ja": 1, "ko": 1, "en": 1}
    assert report["responses"]["kept"] + report["responses"]["empty"] + report["responses"]["failed"] == 6
    _check_outputs(out, report)
    # The local judge reads logprobs: the full distribution, so no order is ever unreadable.
    assert report["judge"]["mode"] == "logprobs" and report["judge"]["failures"] == 0
    h = report["judge"]["human_agreement"]
    assert h["pairs"] + h["skipped"] == 3
    assert h["agree"] + h["disagree"] + h["ties"] + h["failures"] == h["pairs"]
    assert report["requests"][spec]["sent"] > 0

    again = _finish(_synth(out, spec, "--human-pairs", str(human), "--human-limit", "3"))
    assert again["requests"][spec]["sent"] == 0
    assert again["judge"] == report["judge"]


def test_llama_server_run_survives_sigkill_and_resumes(tmp_path):
    """Generation in text, judging in logprob mode (top_logprobs from llama.cpp), killed and resumed."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is an optional source build (see judge/llama_server.py)")
    from rewardsmith.judge.llama_server import LlamaServer

    with LlamaServer(MODEL, log=tmp_path / "server.log", n_ctx=4096) as server:
        spec, judge = server.spec, server.spec + "?mode=logprobs"
        out = tmp_path / "server-run"
        extra = ("--concurrency", "2", "--n-responses", "3")
        proc = _synth(out, spec, *extra, judge=judge)
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

        report = _finish(_synth(out, spec, *extra, judge=judge))
        counters = report["requests"]
        # every request finished before the kill came from disk; each new one was sent once
        assert sum(c["cached"] for c in counters.values()) == len(before)
        with sqlite3.connect(out / "cache.sqlite") as db:
            after = db.execute("SELECT count(*) FROM results").fetchone()[0]
            logprob_rows = db.execute("SELECT count(*) FROM results WHERE probs IS NOT NULL").fetchone()[0]
        assert after == len(before) + _sent(report) - sum(c["failed"] for c in counters.values())
        assert report["judge"]["mode"] == "logprobs" and logprob_rows == 2 * report["judge"]["judged"]
        _check_outputs(out, report)

        again = _finish(_synth(out, spec, *extra, judge=judge))
        assert _sent(again) == 0
        assert again["judge"] == report["judge"]
