"""Diagnostic plots of an `EvalResult` (matplotlib, Agg backend: no display needed).

Each function draws one PNG and returns True, or returns False when there is nothing to draw
(e.g. only judges, which give no rewards, so no calibration or reward plots).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardsmith.evaluate.run import EvalResult


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never try to open a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return True


def accuracy_plot(result: EvalResult, path: Path) -> bool:
    """Grouped bars: one group per table column, one bar per model, 95% interval as error bars."""
    plt = _plt()
    cols, names = result.columns, [m["name"] for m in result.models]
    x = np.arange(len(cols))
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cols) * max(1, len(names)) ** 0.5), 4))
    for i, n in enumerate(names):
        cells = [result.table[n][c] for c in cols]
        acc = np.array([c.accuracy for c in cells])
        err = np.array([[c.accuracy - c.low for c in cells], [c.high - c.accuracy for c in cells]])
        ax.bar(x + (i - (len(names) - 1) / 2) * width, acc, width, yerr=err, capsize=3, label=n)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, cols, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("pairwise accuracy")
    ax.legend(fontsize=8)
    return _save(fig, path)


def calibration_plot(result: EvalResult, path: Path) -> bool:
    """Reliability curves (one panel per dataset, one line per model) with the diagonal."""
    if not result.calibration:
        return False
    plt = _plt()
    datasets = list(dict.fromkeys(d for _, d in result.calibration))
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        ax.plot([0.5, 1], [0.5, 1], color="grey", lw=0.8, ls="--")
        for (model, d), cal in result.calibration.items():
            if d != ds:
                continue
            pts = [(c, a) for c, a in zip(cal.confidence, cal.accuracy) if c is not None]
            if pts:
                cs, accs = zip(*pts)
                ax.plot(cs, accs, marker="o", ms=3, label=f"{model} (ECE {cal.ece:.3f})")
        ax.set_title(ds, fontsize=9)
        ax.set_xlim(0.5, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence max(σ(Δr), 1−σ(Δr))")
        ax.set_ylabel("fraction agreeing with humans")
        ax.legend(fontsize=7)
    return _save(fig, path)


def length_bias_plot(result: EvalResult, path: Path) -> bool:
    """Per dataset and model: accuracy when the chosen answer is longer vs shorter."""
    if not result.length_bias:
        return False
    plt = _plt()
    keys = list(result.length_bias)
    labels = [f"{m}\n{d}" for m, d in keys]
    longer = [result.length_bias[k].acc_chosen_longer for k in keys]
    shorter = [result.length_bias[k].acc_chosen_shorter for k in keys]
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(keys)), 4))
    ax.bar(x - 0.2, longer, 0.4, label="chosen is longer")
    ax.bar(x + 0.2, shorter, 0.4, label="chosen is shorter")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("pairwise accuracy")
    ax.legend(fontsize=8)
    return _save(fig, path)


def reward_plot(result: EvalResult, path: Path) -> bool:
    """Histograms of rewards: one row per model, one panel per (dataset, language), chosen vs rejected."""
    scored = {k: j for k, j in result.judgements.items() if j.r_chosen is not None}
    if not scored:
        return False
    plt = _plt()
    by_name = {ds.spec.name: ds for ds in result.datasets}
    models = list(dict.fromkeys(m for m, _ in scored))
    panels = []  # (dataset, language)
    for ds in result.datasets:
        for lang in sorted({p.language or "unknown" for p in ds.pairs}):
            panels.append((ds.spec.name, lang))
    fig, axes = plt.subplots(len(models), len(panels), figsize=(2.8 * len(panels), 2.3 * len(models)),
                             squeeze=False)
    for i, m in enumerate(models):
        for k, (name, lang) in enumerate(panels):
            ax = axes[i][k]
            j = scored.get((m, name))
            if j is None:
                ax.axis("off")
                continue
            sel = np.array([(p.language or "unknown") == lang for p in by_name[name].pairs])
            rc, rr = j.r_chosen[sel], j.r_rejected[sel]
            lo, hi = float(min(rc.min(), rr.min())), float(max(rc.max(), rr.max()))
            bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 30)
            ax.hist(rc, bins=bins, alpha=0.55, label="chosen")
            ax.hist(rr, bins=bins, alpha=0.55, label="rejected")
            ax.set_title(f"{m} · {name} · {lang}", fontsize=7)
            ax.tick_params(labelsize=6)
            if i == 0 and k == 0:
                ax.legend(fontsize=6)
    return _save(fig, path)
