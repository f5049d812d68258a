"""The end-of-run report of `train`: held-out accuracy by language and by language/objective/labeler,
beside the length baselines, as the CLI and the demo print it."""

from __future__ import annotations


def summary(result) -> str:
    """The end-of-run report: held-out accuracy overall, by language, and by language/objective/labeler
    beside the length baselines ("longer wins" / "shorter wins" on the same pairs), with 95% intervals."""
    v = result.validation
    lines = [f"model: {result.output_dir}",
             f"steps {result.steps}, {result.train_seconds:.0f} s training, {result.tokens_per_second:.0f} tokens/s, "
             f"padding {100 * result.padding_fraction:.1f}% of computed tokens",
             "| held-out | pairs | prompts | accuracy | 95% CI | loss |", "|---|---|---|---|---|---|"]
    for name, m in [("all", v), *v["by_language"].items()]:
        lines.append(f"| {name} | {m['n']} | {_prompts(m)} | {m['accuracy']:.3f} | "
                     f"{m['ci95'][0]:.3f}–{m['ci95'][1]:.3f} | {m['loss']:.4f} |")
    groups = v.get("by_group", {})
    if groups:
        lines += ["", "| held-out group (language/objective/labeler) | pairs | prompts | accuracy (95% CI) | "
                      "longer wins | shorter wins | vs the better, 95% CI | chosen longer | chosen shorter |",
                  "|---|---|---|---|---|---|---|---|---|"]
        behind = []
        for group, m in groups.items():
            vs = m["vs_length"]
            mark = "" if vs["beats"] else " †"
            if not vs["beats"]:
                behind.append(group)
            lines.append(f"| {group} | {m['n']} | {_prompts(m)} | "
                         f"{m['accuracy']:.3f} ({m['ci95'][0]:.3f}–{m['ci95'][1]:.3f}){mark} | "
                         f"{vs['longer_wins']:.3f} | {vs['shorter_wins']:.3f} | "
                         f"{vs['difference']:+.3f} ({vs['ci95'][0]:+.3f}–{vs['ci95'][1]:+.3f}) | "
                         f"{_slice(m, 'longer')} | {_slice(m, 'shorter')} |")
        for group, m in groups.items():
            if "baseline_side" in m:
                c, r = m["baseline_side"]["baseline_chosen"], m["baseline_side"]["baseline_rejected"]
                lines.append(f"{group}: {c['accuracy']:.3f} ({c['n']}) where the baseline model's answer is the "
                             f"chosen one, {r['accuracy']:.3f} ({r['n']}) where it is the rejected one; far apart, "
                             "the model may be recognising that model's style")
        if behind:
            lines.append(f"† not above the better length baseline beyond its interval ({', '.join(behind)}): "
                         "there the model has not shown it learnt more than the answers' length")
        lines.append("chosen longer / shorter: accuracy (pairs) where the chosen answer is the longer / the shorter "
                     "one; above 0.5 where it is shorter is what no length rule does")
    if v.get("length_coef"):
        lines.append("length control: the loss's length term per group, beta (the saved reward leaves it out; an "
                     "answer twice as long adds beta x 0.69 to the logit): "
                     + ", ".join(f"{group} {beta:+.3f}" for group, beta in v["length_coef"].items()))
    lines.append("intervals: 95% bootstrap over whole prompts (the pairs of one prompt are not independent draws)")
    dropped = result.encode_report["train"]["dropped_for_length"]
    if dropped:
        lines.append("dropped for length (train): " + ", ".join(f"{k} {n}" for k, n in sorted(dropped.items())))
    return "\n".join(lines)


def _slice(group: dict, side: str) -> str:
    """'0.812 (320)': accuracy on the group's pairs whose chosen answer is the `side` one."""
    lb = group.get("length_bias")  # absent in a train_result.json written before it existed
    if not lb or not lb[f"n_chosen_{side}"]:
        return "–"
    return f"{lb[f'acc_chosen_{side}']:.3f} ({lb[f'n_chosen_{side}']})"


def _prompts(m: dict) -> str:
    return str(m["prompts"]) if m.get("prompts") else "–"  # absent before intervals resampled prompts
