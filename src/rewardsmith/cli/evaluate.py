"""`rewardsmith evaluate`: the cards' accuracy table for any models, judges and datasets."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from rewardsmith.errors import RewardsmithError

EXAMPLES = """\
examples:
  rewardsmith evaluate --list
  rewardsmith evaluate --model out/rm-ja --model cyberagent/ca-reward-3b-ja \\
      --dataset helpsteer3-ja --dataset llm-jp-arena --out eval/ja
  rewardsmith evaluate --model base=out/e5-fresh --model tuned=out/e5-rm \\
      --dataset hh-rlhf=../shared/data/hh-rlhf-test --dataset kudge=../shared/data/kudge \\
      --limit 200 --out eval/quick
  rewardsmith evaluate --model out/rm --judge openai:gpt-4o-mini@http://127.0.0.1:8080/v1 \\
      --dataset pairs.jsonl

A dataset is a preset name (read from the hub), PRESET=PATH (a preset's card filters applied to a
local copy), or a file/folder read as is. A model is a folder or a hub id; LABEL=PATH names its row.
Scores are cached (see --cache-dir), so adding a model does not rescore the others.
"""


@dataclass(frozen=True)
class EvaluateConfig:
    """Validated `evaluate` settings; every problem is reported at once."""

    models: tuple[tuple[str | None, str], ...]  # (label or None, folder / hub id)
    judges: tuple[str, ...]
    datasets: tuple[str, ...]
    out: Path
    limit: int | None
    seed: int
    bootstrap: int
    precision: str
    token_budget: int | None  # None: the Scorer's default for the device
    cache_dir: Path | None
    use_cache: bool
    plots: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "EvaluateConfig":
        problems = []
        if not args.model and not args.judge:
            problems.append("give at least one --model (or --judge)")
        if not args.dataset:
            problems.append("give at least one --dataset (see `rewardsmith evaluate --list`)")
        if args.limit is not None and args.limit < 1:
            problems.append(f"--limit {args.limit}: must be at least 1")
        if args.bootstrap < 100:
            problems.append(f"--bootstrap {args.bootstrap}: use at least 100 resamples (default 2000)")
        if args.token_budget is not None and args.token_budget < 64:
            problems.append(f"--token-budget {args.token_budget}: must be at least 64")
        models = []
        for m in args.model or []:
            label, _, path = m.partition("=")
            if path and "/" not in label and not Path(m).exists():
                models.append((label, path))
            else:
                models.append((None, m))
        labels = [lbl or Path(p).name for lbl, p in models]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            problems.append(f"two models would share the row name(s) {dupes}: name them with LABEL=PATH")
        if problems:
            raise RewardsmithError("evaluate: " + "; ".join(problems) + ".")
        return cls(tuple(models), tuple(args.judge or ()), tuple(args.dataset), Path(args.out), args.limit,
                   args.seed, args.bootstrap, args.precision, args.token_budget,
                   Path(args.cache_dir) if args.cache_dir else None, not args.no_cache, not args.no_plots)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="pairwise accuracy table (with intervals and diagnostics) for models and judges",
        description="Evaluate reward models and LLM judges on preference datasets: accuracy with 95%% "
                    "bootstrap intervals, ties counted, per split/subset/language, length bias, calibration, "
                    "reward distributions; writes table.md/csv, results.json, PNG plots and report.html.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", metavar="[LABEL=]PATH", help="reward model folder or hub id (repeat)")
    p.add_argument("--judge", action="append", metavar="SPEC",
                   help="LLM judge spec, e.g. openai:MODEL@URL or local:smollm2-135m-instruct (repeat)")
    p.add_argument("--dataset", action="append", metavar="NAME_OR_PATH", help="preset, PRESET=PATH or file (repeat)")
    p.add_argument("--list", action="store_true", help="list the dataset presets and exit")
    p.add_argument("--out", default="eval", metavar="DIR", help="output folder (default: eval)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate a seeded random sample of N pairs per dataset")
    p.add_argument("--seed", type=int, default=0, help="seed of --limit sampling and the bootstrap (default 0)")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="B", help="bootstrap resamples (default 2000)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="scoring precision (default auto: bf16 where the CPU/GPU supports it)")
    p.add_argument("--token-budget", type=int, default=None, metavar="T",
                   help="padded tokens per scoring batch; does not change results (default: 2048 on CPU, "
                        "16384 on GPU)")
    p.add_argument("--cache-dir", metavar="DIR", help="score cache (default $REWARDSMITH_HOME/eval-cache)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the score cache")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (the HTML report keeps the tables)")
    p.set_defaults(func=run)


def list_presets() -> str:
    from rewardsmith.data.presets import PRESETS

    lines = []
    for name in sorted(PRESETS):
        preset = PRESETS[name]
        desc = getattr(preset, "description", "") or ""
        hub = getattr(preset, "hub_id", None) or getattr(preset, "hub", None) or ""
        lines.append(f"{name:<28} {hub:<44} {desc}".rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_presets())
        return 0
    cfg = EvaluateConfig.from_args(args)

    from rewardsmith.evaluate import RewardModelEvaluator, ScoreCache, evaluate, load_dataset, parse_dataset, write_report
    from rewardsmith.evaluate.cache import default_cache_dir
    from rewardsmith.evaluate.judges import JudgeEvaluator
    from rewardsmith.evaluate.baselines import baselines_for
    from rewardsmith.evaluate.run import check_model

    for _, path in cfg.models:
        check_model(path)
    specs = [parse_dataset(d) for d in cfg.datasets]  # every name checked before any loading
    datasets = []
    for spec in specs:
        ds = load_dataset(spec, limit=cfg.limit, seed=cfg.seed)
        print(f"{spec.name}: {len(ds.pairs)} pairs" + (f" (sample of {ds.sampled_from})" if ds.sampled_from else "")
              + f", {ds.dropped} dropped by the loader", file=sys.stderr)
        datasets.append(ds)
    cache = ScoreCache(cfg.cache_dir) if cfg.use_cache else None
    try:
        evaluators = [RewardModelEvaluator(path, label=label, cache=cache, precision=cfg.precision,
                                           token_budget=cfg.token_budget, progress=True)
                      for label, path in cfg.models]
        judge_cache = (cfg.cache_dir or default_cache_dir()) if cfg.use_cache else None
        evaluators += [JudgeEvaluator.from_spec(spec, cache_dir=judge_cache) for spec in cfg.judges]
        evaluators += baselines_for([path for _, path in cfg.models])
        result = evaluate(evaluators, datasets, seed=cfg.seed, n_boot=cfg.bootstrap,
                          on_progress=lambda msg: print(msg, file=sys.stderr))
    finally:
        if cache:
            cache.close()
    result.settings = {"models": [p for _, p in cfg.models], "judges": list(cfg.judges),
                       "datasets": list(cfg.datasets), "limit": cfg.limit, "seed": cfg.seed,
                       "bootstrap": cfg.bootstrap, "precision": cfg.precision}
    written = write_report(result, cfg.out, plots=cfg.plots)
    from rewardsmith.evaluate.report import markdown_table

    print(markdown_table(result))
    print(f"wrote {', '.join(sorted(written))} to {cfg.out}", file=sys.stderr)
    return 0
