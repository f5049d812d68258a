"""The synth pipeline through the real CLI entry point, on a scripted backend."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import prefer_rules
from rewardsmith.cli import main
from rewardsmith.data.record import PreferencePair
from rewardsmith.synth.instructions import Instruction, dedupe, seed_instructions


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _cli(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_run_makes_judged_pairs_in_three_languages_and_rerun_sends_nothing(scripted, tmp_path, capsys):
    # Generator: "answer <seed>". Judge: "answer 0" beats anything, in either position; other
    # pairs get the default reply, which has no verdict -> counted parse failures.
    spec = scripted(prefer_rules("answer 0"), default="answer {seed}")
    out = tmp_path / "run"
    args = ["synth", "run", "--out", str(out), "--generator", spec, "--judge", spec,
            "--n-responses", "3", "--limit-per-language", "2"]
    report = _cli(capsys, *args)

    assert report["instructions"]["by_language"] == {"ja": 2, "ko": 2, "en": 2}
    assert report["responses"]["kept"] == 6 * 3
    assert report["pairs"]["candidates"] == 6 * 3  # C(3, 2) per instruction
    j = report["judge"]
    assert j["judged"] == 18 and j["decided"] == 12 and j["failures"] == 6 and j["pairs_written"] == 12
    pairs = [PreferencePair.from_dict(d) for d in _lines(out / "pairs.jsonl")]
    assert {p.language for p in pairs} == {"ja", "ko", "en"}
    assert all(p.chosen == "answer 0" and p.rejected != "answer 0" for p in pairs)
    info = pairs[0].label_info
    assert info["raw"] == ["[[A]] it is better", "[[B]]"] and info["orders"] == ["response_1", "response_1"]
    assert info["sampling"] == {"n": 3, "temperature": 0.8, "top_p": 0.95, "max_tokens": 256}
    assert len(_lines(out / "verdicts.jsonl")) == 18
    sent = report["requests"][spec]
    assert sent["sent"] == 18 + 18 * 2 and sent["cached"] == 0

    before = {p.name: p.read_bytes() for p in out.glob("*.jsonl")}
    again = _cli(capsys, *args)
    assert again["requests"][spec]["sent"] == 0 and again["requests"][spec]["cached"] == 54
    assert {p.name: p.read_bytes() for p in out.glob("*.jsonl")} == before


def test_stages_run_alone_and_ties_are_counted_and_kept_out(scripted, tmp_path, capsys):
    # A judge that always says A: every pair flips with the order -> all ties.
    gen = scripted([], default="answer {seed}")
    judge = scripted([{"contains": "[[A]]", "reply": "[[A]]"}], default=None)
    out = str(tmp_path / "staged")
    common = ["--out", out, "--languages", "en", "--limit-per-language", "2"]
    assert _cli(capsys, "synth", "instructions", *common)["instructions"]["kept"] == 2
    assert _cli(capsys, "synth", "responses", *common, "--generator", gen)["responses"]["kept"] == 4
    assert _cli(capsys, "synth", "pairs", *common)["pairs"]["candidates"] == 2
    j = _cli(capsys, "synth", "judge", *common, "--judge", judge)["judge"]
    assert (j["ties"], j["order_flips"], j["pairs_written"], j["flip_rate"]) == (2, 2, 0, 1.0)
    assert j["first_position_rate"] == 1.0
    assert (Path(out) / "pairs.jsonl").read_text() == ""

    j = _cli(capsys, "synth", "judge", *common, "--judge", judge, "--keep-ties")["judge"]
    kept = _lines(Path(out) / "pairs.jsonl")
    assert j["pairs_written"] == 2 and all(p["margin"] == 0.0 and p["label_info"]["verdict"] == "tie" for p in kept)


def test_missing_stage_input_and_bad_config_are_clean_errors(tmp_path, capsys):
    assert main(["synth", "judge", "--out", str(tmp_path), "--judge", "scripted:x.json"]) == 2
    assert "run `rewardsmith synth instructions" in capsys.readouterr().err
    assert main(["synth", "run", "--out", str(tmp_path), "--n-responses", "0", "--temperature", "0"]) == 2
    err = capsys.readouterr().err
    # every problem at once: n_responses, no generators, no judge
    assert "n_responses=0" in err and "generators: none given" in err and "judge: none given" in err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("generator: oops\n")
    assert main(["synth", "run", "--out", str(tmp_path), "--config", str(cfg)]) == 2
    assert "unknown option(s) ['generator']" in capsys.readouterr().err


def test_config_file_and_synthesised_instructions_with_dedupe(scripted, tmp_path, capsys):
    # The instruction writer answers every request with the same Japanese text: one survives dedupe.
    writer = scripted([{"contains": "依頼", "reply": "1. 新しい趣味を始めるためのコツを教えてください。"}],
                      default="Tell me about the moon.")
    cfg = tmp_path / "synth.yaml"
    cfg.write_text(f"languages: [ja, en]\nsynthesize: 4\ninstruction_model: {writer}\n")
    report = _cli(capsys, "synth", "instructions", "--config", str(cfg), "--out", str(tmp_path / "o"))
    ins = report["instructions"]
    assert ins["synthesis"]["requested"] == 8 and ins["synthesis"]["accepted"] == 8
    assert ins["duplicates_dropped"] == 6  # 4 identical ja + 4 identical en -> 1 each
    rows = _lines(tmp_path / "o" / "instructions.jsonl")
    synth = [r for r in rows if r["source"].startswith("synth:")]
    assert sorted(r["instruction"] for r in synth) == ["Tell me about the moon.", "新しい趣味を始めるためのコツを教えてください。"]


def test_dedupe_catches_reworded_copies_per_language():
    items = [Instruction("1", "en", "How do I boil an egg?", "t"),
             Instruction("2", "en", "how do I boil an egg", "t"),          # case/punctuation only
             Instruction("3", "en", "How do I boil an egg quickly?", "t"),  # near copy
             Instruction("4", "en", "What is the capital of France?", "t"),
             Instruction("5", "ja", "How do I boil an egg?", "t")]         # another language: kept
    kept, dropped = dedupe(items)
    assert [k.id for k in kept] == ["1", "4", "5"] and dropped == 2


def test_shipped_seeds_are_distinct_and_in_their_language():
    seeds = seed_instructions(["ja", "ko", "en"])
    kept, dropped = dedupe(seeds)
    assert dropped == 0 and len(seeds) >= 30
    for lang in ("ja", "ko", "en"):
        assert 10 <= sum(s.language == lang for s in seeds) <= 20
    assert len({s.id for s in seeds}) == len(seeds)


@pytest.mark.parametrize("argv", [["judge", "--help"], ["synth", "run", "--help"]])
def test_help_has_examples(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert "examples:" in capsys.readouterr().out


def test_judge_command_scores_labelled_pairs(scripted, tmp_path, capsys):
    rows = [{"prompt": [{"role": "user", "content": f"question {i}"}], "chosen": f"good {i}", "rejected": f"bad {i}"}
            for i in range(4)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    # Prefers "good" for questions 0-2 in either order; always answers A for question 3 (a flip).
    rules = [{"contains": "question 3", "reply": "[[A]]"}] + prefer_rules("good")
    spec = scripted(rules, default=None)
    out = tmp_path / "judged"
    report = _cli(capsys, "judge", "--judge", spec, "--dataset", str(data), "--out", str(out))
    assert (report["pairs"], report["agree"], report["ties"], report["flips"]) == (4, 3, 1, 1)
    # a tie is not a win (the evaluation table's convention); ties are reported beside accuracy
    assert report["accuracy"] == pytest.approx(3 / 4) and report["flip_rate"] == pytest.approx(0.25)
    assert report["ci_low"] <= report["accuracy"] <= report["ci_high"] and report["flip_ties"] == 1
    assert report["requests"]["sent"] == 8
    assert json.loads((out / "judge_report.json").read_text())["accuracy"] == report["accuracy"]
    assert len(_lines(out / "verdicts.jsonl")) == 4
    again = _cli(capsys, "judge", "--judge", spec, "--dataset", str(data), "--out", str(out))
    assert again["requests"]["sent"] == 0 and again["accuracy"] == report["accuracy"]


def test_limit_applies_to_given_instructions_and_synthesised_ones_come_on_top(scripted, tmp_path, capsys):
    writer = scripted([], default="Explain how tides work in two sentences. {seed}")
    report = _cli(capsys, "synth", "instructions", "--out", str(tmp_path / "o"), "--languages", "en",
                  "--limit-per-language", "1", "--synthesize", "2", "--instruction-model", writer)
    rows = _lines(tmp_path / "o" / "instructions.jsonl")
    assert rows[0]["source"] == "seed" and len(rows) == 2 and rows[1]["source"].startswith("synth:")
    assert report["instructions"]["duplicates_dropped"] == 1  # "... 0" and "... 1" are near-duplicates


def test_a_full_disk_while_writing_stage_files_keeps_what_is_done(scripted, tmp_path, capsys, full_disk):
    spec = scripted(prefer_rules("answer 0"), default="answer {seed}")
    out = tmp_path / "run"
    common = ["--out", str(out), "--languages", "en", "--limit-per-language", "2"]
    for stage in ("instructions", "responses", "pairs"):
        _cli(capsys, "synth", stage, *common, "--generator", spec)
    before = {p.name: p.read_bytes() for p in out.glob("*.jsonl")}

    full_disk(out, free_bytes=100)  # the judge's answers reach the cache, then verdicts.jsonl does not fit
    assert main(["synth", "judge", *common, "--judge", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out / 'verdicts.jsonl'}: no space left on the device"), err
    assert "every finished request is kept" in err and "rerun the same command" in err
    assert {p.name: p.read_bytes() for p in out.glob("*.jsonl")} == before  # earlier stages whole
    assert not list(out.glob("*.tmp"))  # the partial file does not hold on to the space

    full_disk(out, free_bytes=10**7)  # space freed
    j = _cli(capsys, "synth", "judge", *common, "--judge", spec)
    assert j["requests"][spec]["sent"] == 0 and j["requests"][spec]["cached"] == 4  # all from the cache
    assert j["judge"]["pairs_written"] == 2 and len(_lines(out / "pairs.jsonl")) == 2


def test_a_full_cache_database_is_one_error_and_the_rerun_sends_only_the_rest(scripted, tmp_path, capsys,
                                                                              monkeypatch):
    from rewardsmith.judge.cache import Cache

    spec = scripted(prefer_rules("answer 0"), default="answer {seed}", log=str(tmp_path / "calls.jsonl"))
    out = tmp_path / "run"
    args = ["synth", "run", "--out", str(out), "--generator", spec, "--judge", spec, "--n-responses", "3",
            "--limit-per-language", "2"]
    opened = Cache.__init__

    def small_disk(self, path):  # SQLite's own "database or disk is full", a few pages past the schema
        opened(self, path)
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count = {pages + 3}")

    monkeypatch.setattr(Cache, "__init__", small_disk)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no space left on the device (database or disk is full)" in err and "cache.sqlite" in err, err
    with sqlite3.connect(out / "cache.sqlite") as db:
        cached = {k for (k,) in db.execute("SELECT key FROM results")}
    assert 0 < len(cached) < 54

    monkeypatch.setattr(Cache, "__init__", opened)
    (tmp_path / "calls.jsonl").unlink()
    report = _cli(capsys, *args)
    resent = [json.loads(x)["key"] for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert not set(resent) & cached and len(resent) == 54 - len(cached)  # only what was not cached
    assert report["requests"][spec]["cached"] == len(cached) and report["judge"]["judged"] == 18
