"""The synth pipeline: instructions -> responses -> candidates -> judged pairs, each stage alone or all.

Files in the output folder (each written whole, then renamed into place, so a killed run never
leaves a half-written stage file; resuming re-reads finished requests from the cache):

    instructions.jsonl   Instruction rows                (stage "instructions")
    responses.jsonl      Response rows                   (stage "responses")
    candidates.jsonl     Candidate rows                  (stage "pairs")
    pairs.jsonl          PreferencePair rows for training (stage "judge"; ties left out by default)
    verdicts.jsonl       every Verdict, ties and failures included
    report.json          counts, requests sent/cached, tokens, time (merged across stages)
    cache.sqlite         every request's result, keyed by content (unless `cache` points elsewhere)
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rewardsmith.data.files import iter_jsonl
from rewardsmith.errors import RewardsmithError, is_disk_full
from rewardsmith.judge.cache import Cache, Client

STAGES = ("instructions", "responses", "pairs", "judge")


@dataclass(frozen=True)
class SynthConfig:
    """Everything a synth run needs; validated once by `validate()`, all problems reported together."""

    out: str
    languages: tuple[str, ...] = ("ja", "ko", "en")
    instructions: tuple[str, ...] = ()       # JSONL files or preference data sources
    seeds: bool = True                       # include the shipped seed instructions
    limit_per_language: int | None = None    # keep the first N given instructions per language (small runs)
    synthesize: int = 0                      # new instructions per language, written by `instruction_model`
    instruction_model: str | None = None     # default: the first generator
    generators: tuple[str, ...] = ()
    n_responses: int = 2                     # per instruction per generator
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 256
    max_pairs_per_instruction: int | None = None
    judge: str | None = None
    judge_max_tokens: int = 16
    keep_ties: bool = False
    human_pairs: str | None = None           # labelled pairs: report the judge's agreement with humans
    human_limit: int | None = 100
    concurrency: int = 4
    timeout: float = 120.0
    max_retries: int = 2
    cache: str | None = None                 # default: OUT/cache.sqlite

    def validate(self, stages: Sequence[str]) -> None:
        errors = []
        if not self.languages:
            errors.append("languages: empty; give e.g. ja,ko,en")
        for name in ("n_responses", "max_new_tokens", "judge_max_tokens", "concurrency"):
            if getattr(self, name) < 1:
                errors.append(f"{name}={getattr(self, name)}: must be 1 or more")
        for name in ("synthesize", "max_retries"):
            if getattr(self, name) < 0:
                errors.append(f"{name}={getattr(self, name)}: must be 0 or more")
        if not 0 <= self.temperature <= 2:
            errors.append(f"temperature={self.temperature}: use a value in [0, 2]")
        if not 0 < self.top_p <= 1:
            errors.append(f"top_p={self.top_p}: use a value in (0, 1]")
        if self.n_responses > 1 and self.temperature == 0:
            errors.append(f"n_responses={self.n_responses} with temperature=0 gives identical samples; "
                          "raise temperature (e.g. 0.8) or set n_responses=1 with several generators")
        if self.max_pairs_per_instruction is not None and self.max_pairs_per_instruction < 1:
            errors.append(f"max_pairs_per_instruction={self.max_pairs_per_instruction}: must be 1 or more (or unset)")
        if "instructions" in stages and not self.seeds and not self.instructions:
            errors.append("no instructions: keep the shipped seeds or give instruction files (--instructions)")
        if "instructions" in stages and self.synthesize and not (self.instruction_model or self.generators):
            errors.append("synthesize>0 needs instruction_model or a generator to write the new instructions")
        if "responses" in stages and not self.generators:
            errors.append("generators: none given; add one, e.g. --generator local:smollm2-135m-instruct")
        if "judge" in stages and not self.judge:
            errors.append("judge: none given; e.g. --judge openai:smollm2@http://127.0.0.1:8080/v1")
        if errors:
            raise RewardsmithError("synth config: " + "; ".join(errors))


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a YAML or JSON file whose keys are SynthConfig field names."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise RewardsmithError(f"--config {path}: file not found") from None
    except yaml.YAMLError as e:
        raise RewardsmithError(f"--config {path}: not valid YAML/JSON ({e})") from None
    if not isinstance(data, dict):
        raise RewardsmithError(f"--config {path}: expected a mapping of option: value")
    known = {f.name for f in fields(SynthConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RewardsmithError(f"--config {path}: unknown option(s) {unknown}; known: {sorted(known)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def _write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    n = 0

    def lines():
        nonlocal n
        for row in rows:
            n += 1
            yield json.dumps(row, ensure_ascii=False) + "\n"

    _write_whole(path, lines())
    return n


def _write_whole(path: Path, chunks: Iterable[str]) -> None:
    """Write `path` through a temporary file renamed into place: readers (and a rerun) see the old
    file or the whole new one, never a part; a failed write removes the temporary file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # a failed write() names no file: name it
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    os.replace(tmp, path)


def _read_jsonl(path: Path, stage: str) -> list[dict]:
    if not path.is_file():
        raise RewardsmithError(f"{path} is missing: run `rewardsmith synth {stage} --out {path.parent}` first")
    # iter_jsonl, not str.splitlines(): the texts are written with ensure_ascii=False, so a U+2028 in a
    # response stays a raw character that splitlines() would cut the row at.
    return [row for _, row in iter_jsonl(path)]


class _Clients:
    """One Client per spec (a local model loads once even when it both generates and judges), one cache."""

    def __init__(self, config: SynthConfig):
        self.config = config
        self.cache = Cache(config.cache or Path(config.out) / "cache.sqlite")
        self._by_spec: dict[str, Client] = {}

    def get(self, spec: str) -> Client:
        if spec not in self._by_spec:
            from rewardsmith.judge.backends import load_backend

            c = self.config
            backend = load_backend(spec, concurrency=c.concurrency, timeout=c.timeout, max_retries=c.max_retries)
            self._by_spec[spec] = Client(backend, self.cache)
        return self._by_spec[spec]

    def counters(self) -> dict[str, dict]:
        return {spec: client.counters.to_dict() for spec, client in self._by_spec.items()}


def run(config: SynthConfig, stages: Sequence[str] = STAGES) -> dict[str, Any]:
    """Run `stages` in order; each reads the previous stage's file from `config.out`. Returns the report.
    Raises RewardsmithError when the disk fills up: finished files and cached requests stay, and the
    rerun sends only the requests not cached."""
    try:
        return _run(config, stages)
    except (OSError, sqlite3.Error) as e:
        if not is_disk_full(e):
            raise
        cache = config.cache or Path(config.out) / "cache.sqlite"
        where, why = (e.filename or config.out, e.strerror) if isinstance(e, OSError) else (cache, str(e))
        raise RewardsmithError(
            f"{where}: no space left on the device ({why}); the stage files already in {config.out} are whole and "
            f"every finished request is kept in {cache}. Free space and rerun the same command: requests "
            "already answered come from the cache") from None


def _run(config: SynthConfig, stages: Sequence[str]) -> dict[str, Any]:
    from rewardsmith.synth import instructions as ins_mod
    from rewardsmith.synth import judging, pairing, responses as resp_mod

    config.validate(stages)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.json"
    report: dict[str, Any] = json.loads(report_path.read_text()) if report_path.is_file() else {}
    clients = _Clients(config)
    try:
        start = time.perf_counter()

        if "instructions" in stages:
            given = ins_mod.seed_instructions(config.languages) if config.seeds else []
            given += ins_mod.load_instructions(config.instructions, config.languages)
            new, synth_report = [], None
            if config.synthesize:  # examples come from every given instruction, not only the kept ones
                spec = config.instruction_model or config.generators[0]
                new, synth_report = ins_mod.synthesize(clients.get(spec), given, config.synthesize, config.languages)
            kept, duplicates = ins_mod.dedupe(given + new)  # a synthesised copy of any given one is dropped
            if config.limit_per_language is not None:  # the limit picks among the given; synthesised ones add to it
                taken: dict[str, int] = {}
                limited = set()
                for it in given:
                    if taken.get(it.language, 0) < config.limit_per_language:
                        taken[it.language] = taken.get(it.language, 0) + 1
                        limited.add(it.id)
                kept = [it for it in kept if it.id in limited or it.source.startswith("synth:")]
            items = kept
            _write_jsonl(out / "instructions.jsonl", (i.to_dict() for i in items))
            report["instructions"] = {
                "given": len(given), "synthesis": asdict(synth_report) if synth_report else None,
                "duplicates_dropped": duplicates, "kept": len(items),
                "by_language": {lang: sum(i.language == lang for i in items) for lang in config.languages},
            }

        if "responses" in stages:
            items = [ins_mod.Instruction(**r) for r in _read_jsonl(out / "instructions.jsonl", "instructions")]
            sampling = resp_mod.Sampling(config.n_responses, config.temperature, config.top_p, config.max_new_tokens)
            responses, r_report = resp_mod.generate([clients.get(g) for g in config.generators], items, sampling)
            _write_jsonl(out / "responses.jsonl", (r.to_dict() for r in responses))
            report["responses"] = asdict(r_report)

        if "pairs" in stages:
            responses = [resp_mod.Response(**r) for r in _read_jsonl(out / "responses.jsonl", "responses")]
            candidates, identical = pairing.make_candidates(responses, config.max_pairs_per_instruction)
            _write_jsonl(out / "candidates.jsonl", (c.to_dict() for c in candidates))
            report["pairs"] = {"candidates": len(candidates), "identical_responses_dropped": identical}

        if "judge" in stages:
            from rewardsmith.judge.core import summarize

            items = {r["id"]: ins_mod.Instruction(**r) for r in _read_jsonl(out / "instructions.jsonl", "instructions")}
            responses = {r["id"]: resp_mod.Response(**r) for r in _read_jsonl(out / "responses.jsonl", "responses")}
            candidates = [pairing.Candidate(r["id"], r["instruction_id"], tuple(r["response_ids"]))
                          for r in _read_jsonl(out / "candidates.jsonl", "pairs")]
            judge = clients.get(config.judge)
            pairs, verdicts = judging.judge_candidates(judge, candidates, items, responses, keep_ties=config.keep_ties,
                                                       max_tokens=config.judge_max_tokens)
            _write_jsonl(out / "verdicts.jsonl", (v.to_dict() for v in verdicts))
            _write_jsonl(out / "pairs.jsonl", (p.to_dict() for p in pairs))
            s = summarize(verdicts)
            report["judge"] = {
                "judge": judge.model_id, "mode": judge.mode, "judged": len(verdicts), "pairs_written": len(pairs),
                "decided": s.agree + s.disagree, "ties": s.ties, "order_flips": s.flips,
                "explicit_ties": s.explicit_ties, "flip_ties": s.flip_ties, "failures": s.failures,
                "failure_reasons": s.failure_reasons, "flip_rate": s.flip_rate,
                "first_position_rate": s.first_position_rate, "first_position_prob": s.first_position_prob,
                "ties_kept": config.keep_ties,
            }
            if config.human_pairs:
                report["judge"]["human_agreement"] = judge_human_pairs(
                    judge, config.human_pairs, config.human_limit, config.judge_max_tokens,
                    out / "human_verdicts.jsonl")

        report["requests"] = clients.counters()  # this invocation only: a resumed run shows what it re-sent
        report["seconds"] = round(time.perf_counter() - start, 3)
        # Whole or not at all: a torn report.json would stop the rerun that reads it.
        _write_whole(report_path, [json.dumps(report, ensure_ascii=False, indent=2) + "\n"])
        return report
    finally:
        clients.cache.close()  # also after a failure: an open write would lock the rerun out


def judge_human_pairs(judge: Client, source: str, limit: int | None, max_tokens: int,
                      verdicts_path: Path | None = None, **load_options) -> dict[str, Any]:
    """Judge human-labelled pairs and return the agreement summary (see `JudgeSummary`)."""
    from rewardsmith.data import load_pairs
    from rewardsmith.judge.core import judge_pairs, summarize

    loaded = load_pairs(source, **load_options)
    pairs = loaded.pairs[:limit] if limit else loaded.pairs
    verdicts = judge_pairs(judge, pairs, max_tokens)
    if verdicts_path is not None:
        _write_jsonl(verdicts_path, (v.to_dict() for v in verdicts))
    summary = summarize(verdicts, skipped=len(pairs) - len(verdicts), prompts={p.id: p.prompt_key for p in pairs}).to_dict()
    return {"source": source, "judge": judge.model_id, **summary}
