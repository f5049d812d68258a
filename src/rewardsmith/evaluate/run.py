"""The evaluate stage: score every (evaluator, dataset) pair and compute the table and diagnostics.

An *evaluator* is anything that maps preference pairs to per-pair outcomes (win / tie / loss for
the human-chosen answer) and, when it has them, rewards. Reward models and LLM judges are both
evaluators, so the table can hold the card's reward-model rows and its gpt-4o judge row side by
side. `evaluate(...)` returns an `EvalResult`; `report.write_report` turns it into files.

Reproducibility: scores are cached per (model fingerprint, input) and looked up per response, so
results do not depend on batch size, input order, or which models were evaluated before; the
bootstrap is seeded per (dataset, group), so intervals do not depend on evaluation order either
(and every model is resampled with the same draws: a paired comparison).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rewardsmith.data.record import PreferencePair
from rewardsmith.errors import RewardsmithError, unknown_name_error
from rewardsmith import metrics
from rewardsmith.evaluate.cache import ScoreCache, input_key

# Presets whose card reports each split and then their mean as the headline number
# (ca-reward-3b-ja: HelpSteer3 train and validation, "283 samples in all").
SPLIT_COLUMNS: dict[str, tuple[str, ...]] = {"helpsteer3-ja": ("train", "validation")}

SCORE_CHUNK = 256  # responses scored per cache write: an interrupted run loses at most this much


@dataclass
class Judgement:
    """Per-pair results of one evaluator on one dataset, aligned with the pairs.

    outcomes: 1.0 chosen preferred, 0.5 tie, 0.0 rejected preferred (see metrics).
    r_chosen / r_rejected: rewards, or None for evaluators that only give a verdict.
    """

    outcomes: np.ndarray
    r_chosen: np.ndarray | None = None
    r_rejected: np.ndarray | None = None


class Evaluator(Protocol):
    """What the table needs from a row: a name, a kind and per-pair outcomes."""

    name: str
    kind: str  # "reward model" | "judge"

    def judge(self, pairs: Sequence[PreferencePair], *, desc: str = "") -> Judgement: ...

    def info(self) -> dict[str, Any]: ...


class RewardModelEvaluator:
    """A reward model row: scores both answers of every pair through `rewardsmith.score.Scorer`.

    Scores come from the cache when present; the model is loaded only if something is missing, so
    a rerun (or adding a model to an existing table) does no forward pass for cached rows.
    """

    kind = "reward model"

    def __init__(self, name_or_path: str, *, label: str | None = None, cache: ScoreCache | None = None,
                 precision: str = "auto", token_budget: int | None = None, progress: bool = False):
        self.source = name_or_path
        self.name = label or _model_label(name_or_path)
        self.cache = cache
        self.precision = precision
        self.token_budget = token_budget
        self.progress = progress
        self.scored = 0   # responses that went through the model in this run
        self.cached = 0   # responses answered from the cache
        self.loads = 0    # times the model was loaded (0 on a fully cached rerun)
        self._rm = None
        self._scorer = None
        self._fingerprint: str | None = None

    def _load(self):
        if self._rm is None:
            from rewardsmith.models import load_reward_model
            from rewardsmith.score import scoring_dtype

            # Weights in the scoring dtype, as `rewardsmith score` and the server load them: native
            # bf16 where the CPU has it (600 held-out answers on a trained e5-small: 16 s against
            # 19-22 s for fp32 weights under autocast), and the server's rewards for the same model.
            self._rm = load_reward_model(self.source, dtype=scoring_dtype(self.precision))
            self.loads += 1
        return self._rm

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            folder = Path(self.source)
            if not folder.is_dir():  # a hub id: its local snapshot is known once loaded
                folder = Path(getattr(self._load(), "path", None) or self.source)
            precision = _resolve_precision(self.precision)
            self._fingerprint = self.cache.fingerprint(folder, precision=precision) if self.cache else ""
        return self._fingerprint

    def score(self, items: Sequence[tuple[list[dict], str]], *, desc: str = "") -> list[float]:
        """Rewards of (conversation, response) items, in order; each distinct input scored at most once."""
        from tqdm.auto import tqdm

        keys = [input_key(c, r) for c, r in items]
        known: dict[str, float] = self.cache.get(self.fingerprint(), keys) if self.cache else {}
        todo: dict[str, tuple[list[dict], str]] = {}
        for k, item in zip(keys, items):
            if k not in known and k not in todo:
                todo[k] = item
        self.cached += len(set(keys)) - len(todo)
        if todo:
            scorer = self._get_scorer()
            # Sorted by conversation length, then conversation, before chunking: each chunk packs
            # into tight batches (the scorer sorts within a call), the responses to one
            # conversation land in the same chunk, where a decoder runs their prompt once
            # (models/prefix.py), and the cache still gets a write every SCORE_CHUNK responses.
            pending = sorted(todo.items(), key=lambda kv: (sum(len(m["content"]) for m in kv[1][0]),
                                                           input_key(kv[1][0], ""), len(kv[1][1])))
            with tqdm(total=len(pending), desc=desc or self.name, unit="resp", disable=not self.progress,
                      leave=False) as bar:
                for i in range(0, len(pending), SCORE_CHUNK):
                    chunk = pending[i:i + SCORE_CHUNK]
                    got = dict(zip((k for k, _ in chunk), scorer.score([it for _, it in chunk])))
                    if self.cache:
                        self.cache.put(self.fingerprint(), got)
                    known.update(got)
                    self.scored += len(chunk)
                    bar.update(len(chunk))
        return [known[k] for k in keys]

    def _get_scorer(self):
        if self._scorer is None:
            from rewardsmith.score import Scorer

            self._scorer = Scorer(self._load(), token_budget=self.token_budget, precision=self.precision)
        return self._scorer

    def judge(self, pairs: Sequence[PreferencePair], *, desc: str = "") -> Judgement:
        items = [p.chosen_conversation() for p in pairs] + [p.rejected_conversation() for p in pairs]
        scores = np.asarray(self.score(items, desc=desc), dtype=np.float64)
        rc, rr = scores[: len(pairs)], scores[len(pairs):]
        return Judgement(metrics.outcomes_from_scores(rc, rr), rc, rr)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "source": self.source, "precision": self.precision,
                "fingerprint": self.fingerprint() if self.cache else None,
                "responses_scored": self.scored, "responses_cached": self.cached}


def _resolve_precision(precision: str) -> str:
    """What `precision` ("auto" included) means on this machine: the dtype `_load` gives the
    weights. Part of the cache key, since bf16 and fp32 rewards differ in the third decimal."""
    import torch

    from rewardsmith.score import scoring_dtype

    return "bf16" if scoring_dtype(precision) == torch.bfloat16 else "fp32"


def _model_label(name_or_path: str) -> str:
    p = Path(name_or_path)
    return p.name if p.is_dir() else name_or_path


def check_model(arg: str) -> str:
    """Return `arg` when it can name a model: a folder, an embedded base model name (scored with its
    untrained head: a chance-level baseline), or a hub id "org/name". Otherwise raise, listing the
    close matches among the folders beside it and the embedded names."""
    p = Path(arg)
    if p.is_dir():
        return arg
    from rewardsmith.models.embedded import EMBEDDED

    if not p.exists() and (arg in EMBEDDED or (arg.count("/") == 1 and not arg.startswith((".", "/")))):
        return arg  # the loader decides (and says so when a hub id cannot be reached offline)
    parent = p.parent if p.parent.is_dir() else Path(".")
    names = [str(parent / c.name) if parent != Path(".") else c.name
             for c in parent.iterdir() if c.is_dir() and not c.name.startswith(".")]
    what = "--model: a file, not a model folder" if p.exists() else \
        "--model: neither a model folder, an embedded model nor a hub id org/name"
    raise unknown_name_error("model", arg, EMBEDDED, detail=what, also_match=names, n=5,
                             listed_as="embedded models",
                             fix="Give a folder holding config.json and the weights.")


# ---------------------------------------------------------------------------------------------
# Datasets


@dataclass(frozen=True)
class DatasetSpec:
    """One `--dataset` argument: a preset name, a path, or `PRESET=PATH` (a preset read from a local copy)."""

    name: str
    source: str | None
    preset: str | None


def parse_dataset(arg: str) -> DatasetSpec:
    """`helpsteer3-ja` -> preset from the hub; `helpsteer3-ja=DIR` -> preset on a local copy;
    `data/pairs.jsonl` -> a file or folder read as is. Unknown names raise with close matches."""
    if Path(arg).exists():
        return DatasetSpec(Path(arg).name.split(".")[0] or arg, arg, None)
    from rewardsmith.data.presets import get_preset

    if "=" in arg:
        name, source = arg.split("=", 1)
        get_preset(name)  # raises with close matches
        if not Path(source).exists():
            raise RewardsmithError(f"--dataset {arg!r}: {source} does not exist; give the local copy of {name}.")
        return DatasetSpec(name, source, name)
    try:
        get_preset(arg)
    except RewardsmithError as e:
        raise RewardsmithError(f"--dataset {arg!r} is neither an existing file/folder nor a preset: {e}") from None
    return DatasetSpec(arg, None, arg)


@dataclass
class LoadedDataset:
    spec: DatasetSpec
    pairs: list[PreferencePair]
    loaded: int                      # pairs the loader kept
    dropped: int                     # rows the loader dropped (filters, bad rows)
    dropped_by_reason: dict[str, int]
    sampled_from: int | None = None  # set when --limit sampled `pairs` out of `loaded`

    @functools.cached_property
    def prompt_keys(self) -> np.ndarray:
        """Each pair's prompt fingerprint, in pair order: what intervals resample together (metrics)."""
        return np.array([p.prompt_key for p in self.pairs], dtype=object)


def load_dataset(spec: DatasetSpec, *, limit: int | None = None, seed: int = 0) -> LoadedDataset:
    """Load a dataset through the data layer (presets' card filters included), then take a seeded
    sample of `limit` pairs if asked (random by pair id, so every subset stays represented)."""
    from rewardsmith.data import load_pairs

    result = load_pairs(spec.source, preset=spec.preset) if spec.preset else load_pairs(spec.source)
    pairs, report = list(result.pairs), result.report
    ds = LoadedDataset(spec, pairs, len(pairs), report.n_dropped, dict(report.dropped))
    if not pairs:
        raise RewardsmithError(f"--dataset {spec.name}: no pairs left after loading {spec.source or spec.preset} "
                               f"(dropped {report.n_dropped}: {dict(report.dropped)}).")
    if limit is not None and limit < len(pairs):
        # The `limit` pairs with the smallest hash of (seed, id): a random sample that does not
        # depend on the order the loader returns pairs in, kept in the loader's order.
        rank = sorted(range(len(pairs)), key=lambda i: (hashlib.sha256(f"{seed}:{pairs[i].id}".encode()).digest(), i))
        keep = sorted(rank[:limit])
        ds.pairs, ds.sampled_from = [pairs[i] for i in keep], len(pairs)
    return ds


# ---------------------------------------------------------------------------------------------
# The stage


@dataclass
class Cell:
    """One accuracy with its interval: the table's unit (also per subset / language / split)."""

    model: str
    dataset: str
    group: str  # "all", "split=train", "subset=helpful-base", "language=ja", or "mean"
    acc: metrics.Accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "group": self.group, **self.acc.to_dict()}


@dataclass
class EvalResult:
    models: list[dict[str, Any]]
    datasets: list[LoadedDataset]
    columns: list[str]                          # table columns in order, "mean" last
    table: dict[str, dict[str, metrics.Accuracy]]  # model -> column -> cell
    breakdown: list[Cell]                       # per split / subset / language
    length_bias: dict[tuple[str, str], metrics.LengthBias] = field(default_factory=dict)
    calibration: dict[tuple[str, str], metrics.Calibration] = field(default_factory=dict)
    judgements: dict[tuple[str, str], Judgement] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    # (model, column) -> the model against the better length baseline of that column (`versus_baseline`)
    versus_baseline: dict[tuple[str, str], "BaselineComparison"] = field(default_factory=dict)


@dataclass(frozen=True)
class BaselineComparison:
    """A model's accuracy minus the better baseline's on one column, with the 95% interval of that
    difference from the shared (paired) bootstrap draws. `beats` only when the whole interval is
    above zero: a model inside the baseline's noise has not shown it learnt more than length."""

    baseline: str
    difference: float
    low: float
    high: float

    @property
    def beats(self) -> bool:
        return self.low > 0

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "difference": self.difference, "ci_low": self.low, "ci_high": self.high,
                "beats": self.beats}


def _seed(seed: int, *parts: str) -> int:
    """A bootstrap seed per (dataset, group), independent of evaluation order and of the model."""
    return int.from_bytes(hashlib.sha256("\0".join([str(seed), *parts]).encode()).digest()[:8], "little")


def evaluate(evaluators: Sequence[Evaluator], datasets: Sequence[LoadedDataset], *, seed: int = 0,
             n_boot: int = 2000, on_progress: Callable[[str], None] | None = None) -> EvalResult:
    """Run every evaluator on every dataset and compute the table, breakdowns and diagnostics.

    Columns: one per dataset (for presets in SPLIT_COLUMNS one per split, then the dataset column is
    their mean, as the card reports), then "mean": the unweighted mean of the dataset columns, its
    interval from the same bootstrap draws. Returns an `EvalResult`; raises nothing of its own.
    """
    columns: list[str] = []
    for ds in datasets:
        columns += [f"{ds.spec.name} {s}" for s in _splits(ds)] + [ds.spec.name]
    columns.append("mean")

    result = EvalResult([], list(datasets), columns, {}, [])
    boots_of: dict[tuple[str, str], np.ndarray] = {}  # (evaluator, column) -> bootstrap accuracies
    for ev in evaluators:
        row: dict[str, metrics.Accuracy] = {}
        headline_boots = []
        for ds in datasets:
            name = ds.spec.name
            if on_progress:
                on_progress(f"{ev.name} on {name} ({len(ds.pairs)} pairs)")
            j = ev.judge(ds.pairs, desc=f"{ev.name} · {name}")
            result.judgements[(ev.name, name)] = j
            splits = _splits(ds)
            # Intervals resample whole prompts (metrics): pairs that answer one question are not independent.
            prompts = ds.prompt_keys
            if splits:
                boots_per_split = []
                for s in splits:
                    sel = np.array([p.subset == s for p in ds.pairs])
                    cell, boots = metrics.accuracy(j.outcomes[sel], clusters=prompts[sel], n_boot=n_boot,
                                                   seed=_seed(seed, name, s))
                    row[f"{name} {s}"] = cell
                    boots_of[(ev.name, f"{name} {s}")] = boots
                    boots_per_split.append(boots)
                # The card's headline: the mean of the split accuracies (not the pooled accuracy).
                boots = np.mean(boots_per_split, axis=0)
                accs = [row[f"{name} {s}"] for s in splits]
                lo, hi = metrics.interval(boots)
                row[name] = metrics.Accuracy(float(np.mean([a.accuracy for a in accs])), lo, hi,
                                             sum(a.n for a in accs), sum(a.wins for a in accs),
                                             sum(a.ties for a in accs), sum(a.prompts for a in accs))
            else:
                row[name], boots = metrics.accuracy(j.outcomes, clusters=prompts, n_boot=n_boot,
                                                    seed=_seed(seed, name, "all"))
            headline_boots.append(boots)
            boots_of[(ev.name, name)] = boots
            result.breakdown += _breakdown(ev.name, ds, j, prompts, seed=seed, n_boot=n_boot)
            if ev.kind != "baseline":  # a length rule's own length bias says nothing new
                lengths_c = [len(p.chosen) for p in ds.pairs]
                lengths_r = [len(p.rejected) for p in ds.pairs]
                result.length_bias[(ev.name, name)] = metrics.length_bias(j.outcomes, lengths_c, lengths_r,
                                                                          j.r_chosen, j.r_rejected)
            if j.r_chosen is not None:
                result.calibration[(ev.name, name)] = metrics.calibration(j.r_chosen - j.r_rejected)
        heads = [row[ds.spec.name] for ds in datasets]
        boots = np.mean(headline_boots, axis=0)
        lo, hi = metrics.interval(boots)
        row["mean"] = metrics.Accuracy(float(np.mean([h.accuracy for h in heads])), lo, hi,
                                       sum(h.n for h in heads), sum(h.wins for h in heads), sum(h.ties for h in heads))
        boots_of[(ev.name, "mean")] = boots
        result.table[ev.name] = row
        result.models.append(ev.info())
    result.versus_baseline = versus_baseline(result, boots_of)
    return result


def versus_baseline(result: EvalResult, boots_of: dict[tuple[str, str], np.ndarray]
                    ) -> dict[tuple[str, str], BaselineComparison]:
    """Every non-baseline row against the better (higher accuracy) baseline row, per column."""
    baselines = [m["name"] for m in result.models if m["kind"] == "baseline"]
    out = {}
    if not baselines:
        return out
    for m in result.models:
        if m["kind"] == "baseline":
            continue
        for col in result.columns:
            best = max(baselines, key=lambda b: result.table[b][col].accuracy)
            diff = boots_of[(m["name"], col)] - boots_of[(best, col)]
            lo, hi = metrics.interval(diff)
            out[(m["name"], col)] = BaselineComparison(
                best, result.table[m["name"]][col].accuracy - result.table[best][col].accuracy, lo, hi)
    return out


def _splits(ds: LoadedDataset) -> tuple[str, ...]:
    """The splits reported as separate columns for this dataset (only those present in its pairs)."""
    wanted = SPLIT_COLUMNS.get(ds.spec.preset or "", ())
    present = {p.subset for p in ds.pairs}
    return tuple(s for s in wanted if s in present)


def _breakdown(model: str, ds: LoadedDataset, j: Judgement, prompts: np.ndarray, *, seed: int,
               n_boot: int) -> list[Cell]:
    """Accuracy per subset, language, objective and labeler, when the dataset has more than one of any."""
    cells = []
    for attr in ("subset", "language", "objective", "labeler"):
        values = [getattr(p, attr) or "unknown" for p in ds.pairs]
        distinct = sorted(set(values))
        if len(distinct) < 2:
            continue
        arr = np.array(values, dtype=object)
        for v in distinct:
            sel = arr == v
            cell, _ = metrics.accuracy(j.outcomes[sel], clusters=prompts[sel], n_boot=n_boot,
                                       seed=_seed(seed, ds.spec.name, attr, v))
            cells.append(Cell(model, ds.spec.name, f"{attr}={v}", cell))
    return cells
