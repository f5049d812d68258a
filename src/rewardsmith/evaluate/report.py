"""Write an `EvalResult` as the card-style table (Markdown, CSV, JSON), diagnostic plots (PNG) and
one self-contained HTML report (plots inlined as base64, no external files or scripts).

Files written into the output folder:
  table.md, table.csv     rows = models/judges, columns = datasets (+ splits) and the mean
  results.json            everything: settings, datasets (kept/dropped by reason), models, cells,
                          breakdowns, length bias, calibration, reward statistics
  breakdown.csv           accuracy per subset / language
  accuracy.png, calibration.png, length_bias.png, rewards.png
  report.html             all of the above in one file a person can open
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rewardsmith.metrics import Accuracy
from rewardsmith.evaluate.run import EvalResult

PLOTS = ("accuracy.png", "calibration.png", "length_bias.png", "rewards.png")


def _fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def cell_text(a: Accuracy) -> str:
    """`0.7032 (0.6510–0.7530)`: accuracy and its 95% bootstrap interval."""
    return f"{_fmt(a.accuracy)} ({_fmt(a.low, 3)}–{_fmt(a.high, 3)})"


NOT_ABOVE_BASELINE = "†"


def flagged_text(result: EvalResult, model: str, column: str) -> str:
    """The cell's text, with † when the model does not beat the better length baseline there."""
    vs = result.versus_baseline.get((model, column))
    return cell_text(result.table[model][column]) + (f" {NOT_ABOVE_BASELINE}" if vs and not vs.beats else "")


def baseline_note(result: EvalResult) -> str:
    """One line per model naming the columns where it is no better than a length rule, or ''."""
    if not result.versus_baseline:
        return ""
    lines = [f"{NOT_ABOVE_BASELINE} not above the better of the length baselines ('longer wins' / 'shorter wins') "
             "beyond the 95% interval of the paired difference: on these pairs the model has not shown it "
             "learnt more than the answers' length."]
    for m in result.models:
        if m["kind"] == "baseline":
            continue
        behind = [c for c in result.columns if not result.versus_baseline[(m["name"], c)].beats]
        if behind:
            lines.append(f"- {m['name']}: no better than length on {len(behind)} of {len(result.columns)} columns "
                         f"({', '.join(behind)})")
        else:
            lines.append(f"- {m['name']}: above both length baselines on every column")
    return "\n".join(lines)


def markdown_table(result: EvalResult) -> str:
    """The card's table (length baselines as rows, † where a model does not beat them) plus the
    counts behind every cell."""
    cols = result.columns
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for m in result.models:
        lines.append(f"| {m['name']} | " + " | ".join(flagged_text(result, m["name"], c) for c in cols) + " |")
    note = baseline_note(result)
    lines += ["", "Accuracy = wins / n; a tie (equal rewards or a tie verdict) is not a win. "
              "Intervals: 95% percentile bootstrap, seeded, resampling whole prompts (pairs that answer "
              "one prompt are not independent: a set of 50 questions with 50 pairs each is 50 draws, not 2,500).",
              *(["", note] if note else []), "",
              "Counts per cell — n scored / ties:", "",
              "| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for m in result.models:
        row = result.table[m["name"]]
        lines.append(f"| {m['name']} | " + " | ".join(f"{row[c].n} / {row[c].ties}" for c in cols) + " |")
    lines += ["", "| dataset | source | pairs kept by the loader | dropped by the loader | evaluated | prompts |",
              "|---|---|---|---|---|---|"]
    for ds in result.datasets:
        reasons = ", ".join(f"{k}: {v}" for k, v in ds.dropped_by_reason.items()) or "none"
        evaluated = f"{len(ds.pairs)}" + (f" (seeded sample of {ds.sampled_from})" if ds.sampled_from else "")
        src = ds.spec.source or f"hub ({ds.spec.preset})"
        prompts = len(set(ds.prompt_keys))
        lines.append(f"| {ds.spec.name} | {src} | {ds.loaded} | {ds.dropped} ({reasons}) | {evaluated} | {prompts} |")
    return "\n".join(lines) + "\n"


def breakdown_markdown(result: EvalResult) -> str:
    if not result.breakdown:
        return ""
    lines = ["| model | dataset | group | accuracy (95% CI) | n | ties |", "|---|---|---|---|---|---|"]
    for c in result.breakdown:
        lines.append(f"| {c.model} | {c.dataset} | {c.group} | {cell_text(c.acc)} | {c.acc.n} | {c.acc.ties} |")
    return "\n".join(lines) + "\n"


def diagnostics_markdown(result: EvalResult) -> str:
    lines = ["| model | dataset | acc. chosen longer (n) | acc. chosen shorter (n) | equal length | "
             "Pearson r(reward, length) | Spearman | ECE |", "|---|---|---|---|---|---|---|---|"]
    for (model, ds), lb in result.length_bias.items():
        cal = result.calibration.get((model, ds))
        lines.append(f"| {model} | {ds} | {_fmt(lb.acc_chosen_longer)} ({lb.n_chosen_longer}) | "
                     f"{_fmt(lb.acc_chosen_shorter)} ({lb.n_chosen_shorter}) | {lb.n_equal_length} | "
                     f"{_fmt(lb.pearson, 3)} | {_fmt(lb.spearman, 3)} | {_fmt(cal.ece if cal else None, 3)} |")
    return "\n".join(lines) + "\n"


def reward_stats(result: EvalResult) -> list[dict[str, Any]]:
    """Mean/std/quantiles of rewards per (model, dataset, language, side)."""
    rows = []
    by_name = {ds.spec.name: ds for ds in result.datasets}
    for (model, name), j in result.judgements.items():
        if j.r_chosen is None:
            continue
        langs = np.array([p.language or "unknown" for p in by_name[name].pairs], dtype=object)
        for lang in sorted(set(langs)):
            sel = langs == lang
            for side, r in (("chosen", j.r_chosen[sel]), ("rejected", j.r_rejected[sel])):
                q = np.quantile(r, [0.05, 0.5, 0.95])
                rows.append({"model": model, "dataset": name, "language": lang, "side": side, "n": int(r.size),
                             "mean": float(r.mean()), "std": float(r.std()),
                             "p05": float(q[0]), "median": float(q[1]), "p95": float(q[2])})
    return rows


def to_json(result: EvalResult) -> dict[str, Any]:
    return {
        "settings": result.settings,
        "columns": result.columns,
        "models": result.models,
        "datasets": [{"name": d.spec.name, "source": d.spec.source, "preset": d.spec.preset, "kept": d.loaded,
                      "dropped": d.dropped, "dropped_by_reason": d.dropped_by_reason,
                      "evaluated": len(d.pairs), "sampled_from": d.sampled_from} for d in result.datasets],
        "table": {m: {c: a.to_dict() for c, a in row.items()} for m, row in result.table.items()},
        "breakdown": [c.to_dict() for c in result.breakdown],
        "versus_baseline": [{"model": m, "column": c, **v.to_dict()} for (m, c), v in result.versus_baseline.items()],
        "length_bias": [{"model": m, "dataset": d, **lb.to_dict()} for (m, d), lb in result.length_bias.items()],
        "calibration": [{"model": m, "dataset": d, **c.to_dict()} for (m, d), c in result.calibration.items()],
        "reward_stats": reward_stats(result),
    }


def _nan_to_none(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def write_report(result: EvalResult, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Write every output file into `out_dir` (created). Returns name -> path of what was written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    md = ["# Evaluation", "", markdown_table(result)]
    if result.breakdown:
        md += ["## Per split, subset and language", "", breakdown_markdown(result)]
    md += ["## Diagnostics", "", diagnostics_markdown(result)]
    written["table.md"] = out / "table.md"
    written["table.md"].write_text("\n".join(md), encoding="utf-8")

    written["table.csv"] = out / "table.csv"
    with open(written["table.csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["model", "kind", "column", "accuracy", "ci_low", "ci_high", "n", "wins", "ties",
                    "beats_length_baselines"])
        for m in result.models:
            for c in result.columns:
                a = result.table[m["name"]][c]
                vs = result.versus_baseline.get((m["name"], c))
                w.writerow([m["name"], m["kind"], c, a.accuracy, a.low, a.high, a.n, a.wins, a.ties,
                            "" if vs is None else vs.beats])

    written["breakdown.csv"] = out / "breakdown.csv"
    with open(written["breakdown.csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["model", "dataset", "group", "accuracy", "ci_low", "ci_high", "n", "wins", "ties"])
        for c in result.breakdown:
            a = c.acc
            w.writerow([c.model, c.dataset, c.group, a.accuracy, a.low, a.high, a.n, a.wins, a.ties])

    data = _nan_to_none(to_json(result))
    written["results.json"] = out / "results.json"
    written["results.json"].write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")

    if plots:
        from rewardsmith.evaluate import plots as plotting

        for name, fig_fn in (("accuracy.png", plotting.accuracy_plot), ("calibration.png", plotting.calibration_plot),
                             ("length_bias.png", plotting.length_bias_plot), ("rewards.png", plotting.reward_plot)):
            path = out / name
            if fig_fn(result, path):
                written[name] = path
    written["report.html"] = out / "report.html"
    written["report.html"].write_text(html_report(result, {k: v for k, v in written.items() if k.endswith(".png")}),
                                      encoding="utf-8")
    return written


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI','Noto Sans CJK JP','Noto Sans KR',sans-serif;
     max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3} tr:nth-child(even) td{background:#fafafa}
.best{font-weight:bold} .note{color:#555;font-size:13px} img{max-width:100%;border:1px solid #eee;margin:.5em 0}
"""


def _table(headers: list[str], rows: list[list[str]], bold: set[tuple[int, int]] = frozenset()) -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in headers)
    body = []
    for i, r in enumerate(rows):
        tds = "".join(f"<td class='best'>{html.escape(x)}</td>" if (i, j) in bold else f"<td>{html.escape(x)}</td>"
                      for j, x in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_report(result: EvalResult, images: dict[str, Path]) -> str:
    """One HTML page: table (best per column in bold), counts, datasets, breakdown, diagnostics, plots."""
    cols = result.columns
    names = [m["name"] for m in result.models]
    rows = [[n, *(flagged_text(result, n, c) for c in cols)] for n in names]
    bold = set()
    for j, c in enumerate(cols, start=1):
        accs = [result.table[n][c].accuracy for n in names]
        if len(names) > 1 and not all(math.isnan(a) for a in accs):
            best = np.nanmax(accs)
            bold |= {(i, j) for i, a in enumerate(accs) if a == best}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>rewardsmith evaluation</title>"
             f"<style>{_CSS}</style></head><body><h1>Reward model evaluation</h1>",
             _table(["model", *cols], rows, bold),
             "<p class='note'>Pairwise accuracy = wins / n; a tie (equal rewards or a tie verdict) is not a win. "
             "Parentheses: 95% percentile-bootstrap interval (seeded). The mean column is the unweighted mean "
             "of the dataset columns.</p>",
             *([f"<p class='note'>{html.escape(baseline_note(result)).replace(chr(10), '<br>')}</p>"]
               if result.versus_baseline else []),
             "<h2>Counts</h2>",
             _table(["model", "kind", *[f"{c}: n / ties" for c in cols], "responses scored / cached"],
                    [[m["name"], m["kind"], *(f"{result.table[m['name']][c].n} / {result.table[m['name']][c].ties}"
                                              for c in cols),
                      f"{m.get('responses_scored', '–')} / {m.get('responses_cached', '–')}"]
                     for m in result.models]),
             _table(["dataset", "source", "kept by loader", "dropped by loader", "evaluated"],
                    [[d.spec.name, d.spec.source or f"hub ({d.spec.preset})", str(d.loaded),
                      f"{d.dropped} " + (", ".join(f"{k}: {v}" for k, v in d.dropped_by_reason.items())),
                      str(len(d.pairs)) + (f" (seeded sample of {d.sampled_from})" if d.sampled_from else "")]
                     for d in result.datasets])]
    if result.breakdown:
        parts += ["<h2>Per split, subset and language</h2>",
                  _table(["model", "dataset", "group", "accuracy (95% CI)", "n", "ties"],
                         [[c.model, c.dataset, c.group, cell_text(c.acc), str(c.acc.n), str(c.acc.ties)]
                          for c in result.breakdown])]
    parts += ["<h2>Diagnostics</h2>",
              "<p class='note'>Length bias: accuracy on pairs where the chosen answer is the longer vs the shorter "
              "one (characters), and the correlation of reward with length over all scored answers. A model "
              "that only prefers length scores high on the first and low on the second. ECE: expected "
              "calibration error of σ(r<sub>chosen</sub> − r<sub>rejected</sub>) read as the probability that the "
              "model's pick is the human's.</p>",
              _table(["model", "dataset", "acc. chosen longer (n)", "acc. chosen shorter (n)", "equal length",
                      "Pearson r(reward, length)", "Spearman", "ECE"],
                     [[m, d, f"{_fmt(lb.acc_chosen_longer)} ({lb.n_chosen_longer})",
                       f"{_fmt(lb.acc_chosen_shorter)} ({lb.n_chosen_shorter})", str(lb.n_equal_length),
                       _fmt(lb.pearson, 3), _fmt(lb.spearman, 3),
                       _fmt(result.calibration[(m, d)].ece, 3) if (m, d) in result.calibration else "–"]
                      for (m, d), lb in result.length_bias.items()])]
    stats = reward_stats(result)
    if stats:
        parts += ["<h3>Reward distributions</h3>",
                  _table(["model", "dataset", "language", "side", "n", "mean", "std", "p05", "median", "p95"],
                         [[s["model"], s["dataset"], s["language"], s["side"], str(s["n"]),
                           *(_fmt(s[k], 3) for k in ("mean", "std", "p05", "median", "p95"))] for s in stats])]
    titles = {"accuracy.png": "Accuracy with 95% intervals", "calibration.png": "Reliability curves",
              "length_bias.png": "Length bias", "rewards.png": "Reward distributions per dataset and language"}
    for name, path in images.items():
        b64 = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f"<h3>{titles.get(name, name)}</h3><img alt='{name}' src='data:image/png;base64,{b64}'>")
    if result.settings:
        parts.append("<h2>Settings</h2><pre>" + html.escape(json.dumps(result.settings, indent=1, ensure_ascii=False))
                     + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
