"""The card's learning-rate sweep: train once per lr, keep the best by validation accuracy.

    output_dir/lr-5e-06/ ...   one ordinary training run (model, checkpoints, metrics) per lr
    output_dir/sweep.md        the table of all runs; sweep.json the same as data
    output_dir/best            a symlink to the winning run's folder

Runs that already finished (their train_result.json exists) are read, not retrained, so an
interrupted sweep restarted with --resume only trains what is missing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rewardsmith.train import is_main_process
from rewardsmith.train.config import TrainConfig


def run_dir(config: TrainConfig, lr: float) -> Path:
    return Path(config.output_dir) / f"lr-{lr:g}"


def sweep(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> tuple[list[dict], dict]:
    """Train each lr in `config.lr`; returns (rows of the table, the best row).

    Best = highest validation accuracy, then lowest validation loss. Each row: lr, accuracy,
    ci95, loss, per-language accuracy, steps, output_dir.
    """
    from rewardsmith.train.loop import train

    rows = []
    for lr in config.lr:
        sub = dataclasses.replace(config, lr=(lr,), output_dir=str(run_dir(config, lr)))
        done = Path(sub.output_dir) / "train_result.json"
        if resume and done.is_file():
            result = json.loads(done.read_text())
        else:
            result = dataclasses.asdict(train(sub, resume=resume, progress=progress))
        val = result["validation"]
        rows.append({"lr": lr, "accuracy": val["accuracy"], "ci95": list(val["ci95"]), "loss": val["loss"],
                     "by_language": {k: v["accuracy"] for k, v in val["by_language"].items()},
                     "steps": result["steps"], "output_dir": str(sub.output_dir)})
    best = max(rows, key=lambda r: (r["accuracy"], -r["loss"]))
    out = Path(config.output_dir)
    if is_main_process():
        (out / "sweep.json").write_text(json.dumps({"runs": rows, "best": best}, indent=2) + "\n")
        (out / "sweep.md").write_text(table(rows, best) + "\n")
        link = out / "best"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(best["output_dir"]).name)
    return rows, best


def table(rows: list[dict], best: dict) -> str:
    """Markdown: one row per lr, the winner marked."""
    langs = sorted({lang for r in rows for lang in r["by_language"]})
    head = "| lr | val accuracy | 95% CI | val loss | " + " | ".join(langs) + " | steps |"
    lines = [head, "|" + "---|" * (5 + len(langs))]
    for r in rows:
        mark = " **best**" if r is best else ""
        per = " | ".join(f"{r['by_language'].get(lang, float('nan')):.3f}" for lang in langs)
        lines.append(f"| {r['lr']:g}{mark} | {r['accuracy']:.3f} | {r['ci95'][0]:.3f}–{r['ci95'][1]:.3f} | "
                     f"{r['loss']:.4f} | {per} | {r['steps']} |")
    return "\n".join(lines)
