"""The numbers behind the evaluation table and the judge's summary: pairwise accuracy with a tie
policy, bootstrap confidence intervals, calibration (reliability curve, ECE), length bias and rank
correlation.

Intervals resample prompts, not pairs, when the caller says which prompt each pair answers
(`clusters`): pairs of one prompt are not independent draws. ko-llm-judged has ~52 pairs per
question and MT-Bench-style sets dozens per question; resampling such pairs one by one treats a
held-out set of 50 questions as 2,600 independent trials and gives intervals too narrow to trust.

Only numpy, and no other stage: it sits below `evaluate` and `judge` (docs/architecture.md), so a
judge's accuracy and a reward model's are one computation. Every function takes plain arrays so
the math can be golden-tested by hand.

Outcome encoding used everywhere: 1.0 = the evaluator preferred the human-chosen answer (a win),
0.0 = it preferred the rejected one (a loss), 0.5 = a tie. **A tie is not a win**: accuracy is
`wins / n` with ties in `n` (the cards' convention of counting `r_chosen > r_rejected`), and the
number of ties is reported beside it so nobody mistakes a model that scores everything equal for
a model at chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIN, TIE, LOSS = 1.0, 0.5, 0.0


def outcomes_from_scores(r_chosen, r_rejected) -> np.ndarray:
    """(n,) outcomes from reward pairs: 1 when r_chosen > r_rejected, 0.5 when equal, else 0."""
    rc, rr = np.asarray(r_chosen, dtype=np.float64), np.asarray(r_rejected, dtype=np.float64)
    return np.where(rc > rr, WIN, np.where(rc == rr, TIE, LOSS))


def wins(outcomes) -> np.ndarray:
    """1.0 where the outcome is a win, else 0.0 (ties and losses): what accuracy averages."""
    return (np.asarray(outcomes, dtype=np.float64) == WIN).astype(np.float64)


@dataclass(frozen=True)
class Accuracy:
    """One table cell: accuracy with its 95% percentile-bootstrap interval and the counts behind it."""

    accuracy: float
    low: float
    high: float
    n: int
    wins: int
    ties: int
    prompts: int | None = None  # distinct prompts the interval resampled; None: pairs were resampled

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "ci_low": self.low, "ci_high": self.high,
                "n": self.n, "wins": self.wins, "ties": self.ties, "prompts": self.prompts}


def cluster_index(clusters) -> np.ndarray:
    """(n,) cluster numbers 0..k-1 in order of first appearance, from any hashable keys (prompts,
    question ids). First-appearance order keeps the draws of all-singleton clusters equal to the
    pair bootstrap's, so an interval changes only where pairs really share a prompt."""
    keys = np.asarray(clusters)
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.reshape(-1)]


def bootstrap_means(values, *, clusters=None, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_boot,) means of `values` resampled with replacement; same seed and clusters -> same draws.

    clusters: one key per value (the prompt a pair answers). Whole clusters are then drawn, and
    each replicate is the mean over every value of the drawn clusters (a cluster drawn twice counts
    twice): the cluster bootstrap. None: every value is its own cluster.
    The generator is seeded per call, so a cell's interval does not depend on which other cells
    were computed first (order independence); two arrays with the same seed and clusters get the
    same draws, which is what makes a difference of their replicates a paired comparison.
    Resampling is chunked to bound memory at ~8 MB.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return np.full(n_boot, np.nan)
    if clusters is None:
        sums, counts = v, np.ones(v.size)
    else:
        which = cluster_index(clusters)
        if which.size != v.size:
            raise ValueError(f"{which.size} cluster keys for {v.size} values")
        sums, counts = np.bincount(which, weights=v), np.bincount(which).astype(np.float64)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    chunk = max(1, 1_000_000 // sums.size)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, sums.size, size=(stop - start, sums.size))
        out[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return out


def accuracy(outcomes, *, clusters=None, n_boot: int = 2000, seed: int = 0,
             level: float = 0.95) -> tuple[Accuracy, np.ndarray]:
    """Accuracy of `outcomes` (1/0.5/0) and its percentile-bootstrap CI, resampling `clusters`
    (one prompt key per pair) when given; also returns the bootstrap replicates so a mean over
    datasets can get an interval from the same draws."""
    o = np.asarray(outcomes, dtype=np.float64)
    w = wins(o)
    which = None if clusters is None else cluster_index(clusters)  # numbered once: the count below reuses it
    boots = bootstrap_means(w, clusters=which, n_boot=n_boot, seed=seed)
    if o.size == 0:
        return Accuracy(float("nan"), float("nan"), float("nan"), 0, 0, 0), boots
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boots, [alpha, 1.0 - alpha])
    prompts = None if which is None else int(which.max()) + 1
    cell = Accuracy(float(w.mean()), float(low), float(high), int(o.size), int(w.sum()), int((o == TIE).sum()),
                    prompts)
    return cell, boots


def interval(boots: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (e.g. of a mean over datasets)."""
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boots, [alpha, 1.0 - alpha])
    return float(low), float(high)


def sigmoid(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # numerically stable for large |x|


@dataclass(frozen=True)
class Calibration:
    """Reliability of p = σ(r_chosen − r_rejected) read as "P(the model's pick is the human's pick)".

    Each non-tied pair contributes confidence max(p, 1−p) and correct = (p > 0.5). Bins split
    [0.5, 1]; `ece` = Σ_b (n_b / N) · |accuracy_b − confidence_b|. Ties (p = 0.5 exactly) carry no
    pick and are left out, counted in `ties`.
    """

    bin_edges: list[float]
    confidence: list[float | None]  # mean confidence per bin (None for an empty bin)
    accuracy: list[float | None]    # fraction correct per bin
    counts: list[int]
    ece: float
    n: int
    ties: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def calibration(margins, *, n_bins: int = 10) -> Calibration:
    """Reliability curve and expected calibration error of σ(margin), margin = r_chosen − r_rejected."""
    m = np.asarray(margins, dtype=np.float64)
    ties = int((m == 0).sum())
    m = m[m != 0]
    p = sigmoid(m)
    conf = np.maximum(p, 1.0 - p)
    correct = (m > 0).astype(np.float64)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    # Bin b holds (edges[b], edges[b+1]]; the lowest bin also takes 0.5 itself (a margin that
    # underflows to p == 0.5 in float64 but is not an exact tie).
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    confs, accs, counts = [], [], []
    ece = 0.0
    for b in range(n_bins):
        sel = which == b
        k = int(sel.sum())
        counts.append(k)
        if k == 0:
            confs.append(None)
            accs.append(None)
            continue
        c, a = float(conf[sel].mean()), float(correct[sel].mean())
        confs.append(c)
        accs.append(a)
        ece += k / m.size * abs(a - c)
    return Calibration([float(e) for e in edges], confs, accs, counts,
                       float(ece) if m.size else float("nan"), int(m.size), ties)


def rankdata(x) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (scipy.stats.rankdata 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # Start index of each run of equal values, and the average rank of that run.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def pearson(x, y) -> float:
    """Pearson correlation; NaN when either side is constant or has fewer than 2 values."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x, y) -> float:
    """Spearman rank correlation (Pearson of average ranks)."""
    return pearson(rankdata(x), rankdata(y))


@dataclass(frozen=True)
class LengthBias:
    """Does the evaluator just prefer longer answers? Lengths are in characters (model-independent,
    and fair across ja/ko/en only within a language — read per-language rows for that).

    acc_chosen_longer: accuracy on pairs whose chosen answer is the longer one;
    acc_chosen_shorter: on pairs whose chosen answer is the shorter one; a large gap means the
    accuracy is partly length. pearson/spearman: correlation of reward with length over every
    scored response (chosen and rejected pooled); None for evaluators without scores (judges).
    """

    acc_chosen_longer: float
    n_chosen_longer: int
    acc_chosen_shorter: float
    n_chosen_shorter: int
    n_equal_length: int
    pearson: float | None
    spearman: float | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def length_bias(outcomes, len_chosen, len_rejected, r_chosen=None, r_rejected=None) -> LengthBias:
    """Accuracy split by which answer is longer, plus reward/length correlations when scores exist."""
    w = wins(outcomes)
    lc, lr = np.asarray(len_chosen, dtype=np.float64), np.asarray(len_rejected, dtype=np.float64)
    longer, shorter = lc > lr, lc < lr

    def mean(sel) -> float:
        return float(w[sel].mean()) if sel.any() else float("nan")

    pr = sp = None
    if r_chosen is not None and r_rejected is not None:
        rewards = np.r_[np.asarray(r_chosen, dtype=np.float64), np.asarray(r_rejected, dtype=np.float64)]
        lengths = np.r_[lc, lr]
        pr, sp = pearson(rewards, lengths), spearman(rewards, lengths)
    return LengthBias(mean(longer), int(longer.sum()), mean(shorter), int(shorter.sum()),
                      int((lc == lr).sum()), pr, sp)


def versus_length(outcomes, len_chosen, len_rejected, *, clusters=None, n_boot: int = 1000, seed: int = 0) -> dict:
    """A model's outcomes against "the longer answer wins" and "the shorter answer wins" on the same pairs.

    Returns {"longer_wins", "shorter_wins": their accuracies (a tie of lengths is not a win),
    "baseline": the better one's name, "difference": model accuracy minus the better one's,
    "ci95": the 95% interval of that difference over paired bootstrap draws (the same resampled
    pairs for both; whole prompts when `clusters` gives each pair's prompt), "beats": whether the
    whole interval is above zero}.
    """
    o = np.asarray(outcomes, dtype=np.float64)
    longer = outcomes_from_scores(len_chosen, len_rejected)
    shorter = outcomes_from_scores(len_rejected, len_chosen)
    accs = {"longer wins": float(wins(longer).mean()) if o.size else float("nan"),
            "shorter wins": float(wins(shorter).mean()) if o.size else float("nan")}
    best = max(accs, key=lambda k: accs[k])
    rule = longer if best == "longer wins" else shorter
    diff = bootstrap_means(wins(o) - wins(rule), clusters=clusters, n_boot=n_boot, seed=seed)
    lo, hi = interval(diff) if o.size else (float("nan"), float("nan"))
    d = float(wins(o).mean() - wins(rule).mean()) if o.size else float("nan")
    return {"longer_wins": accs["longer wins"], "shorter_wins": accs["shorter wins"], "baseline": best,
            "difference": d, "ci95": (lo, hi), "beats": bool(lo > 0)}
