"""`rewardsmith judge`: score human-labelled pairs with an LLM judge (accuracy and position bias)."""

from __future__ import annotations

import argparse
import json

EPILOG = """\
The judge sees every pair twice (chosen as answer A, then as answer B). Two ways to read it, set
in the spec with ?mode=:
  logprobs  (default for local:)  the judge's reply is begun with "Verdict: [[" and the next-token
            probabilities of A, B and C (tie) are read; the two orders are averaged per answer
            (position-debiased) and the largest wins. A flip is recorded, not made a tie.
  text      (default for openai: and scripted:)  the reply is generated and parsed for [[A]]/[[B]]/[[C]];
            orders that disagree make a tie. For servers that return no logprobs.
Reported:
  accuracy             wins / pairs with a 95% bootstrap interval (ci_low, ci_high); a tie or a
                       failed verdict is not a win (the evaluation table's convention)
  ties                 pairs with no side (explicit_ties + flip_ties), reported beside accuracy
  decided_accuracy     agree / (agree + disagree)
  flip_rate            share of pairs whose per-order verdict changed with the order (position bias)
  first_position_rate  share of per-order picks that chose answer A (0.5 = unbiased)
  first_position_prob  logprobs: mean P(A) / (P(A) + P(B)) over both orders
  failures             pairs with an unreadable order (failure_reasons says why); logprobs: only
                       when none of A/B/C is among the returned tokens
Writes OUT/verdicts.jsonl (raw judge text and probabilities included) and OUT/judge_report.json.

examples:
  rewardsmith judge --judge local:smollm2-135m-instruct \\
      --dataset ../shared/data/hh-rlhf-test/helpful-base.test.jsonl.gz --limit 100 --out runs/judge-smollm2
  rewardsmith judge --judge "local:smollm2-135m-instruct?mode=text" --dataset pairs.jsonl --out runs/judge-text
  rewardsmith judge --judge "openai:smollm2@http://127.0.0.1:8080/v1?mode=logprobs" --concurrency 2 \\
      --dataset pairs.jsonl --out runs/judge-server
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("judge", help="measure an LLM judge against human-labelled pairs", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              description="Judge human-labelled preference pairs in both orders.")
    p.add_argument("--judge", required=True, help="backend spec: openai:MODEL@URL, local:NAME_OR_PATH, scripted:PATH; "
                   "add ?mode=logprobs or ?mode=text to choose how verdicts are read")
    p.add_argument("--dataset", required=True, help="pairs in any format the data layer reads")
    p.add_argument("--format", help="force the input format (see `rewardsmith.data.load_pairs`)")
    p.add_argument("--preset", help="a named dataset preset of the data layer")
    p.add_argument("--split", help="split to read, for sources that have splits")
    p.add_argument("--limit", type=int, help="judge only the first N pairs")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--max-tokens", type=int, default=16, help="judge reply limit in tokens (default 16; a local logprob judge generates none)")
    p.add_argument("--concurrency", type=int, default=4, help="parallel requests to a server (default 4)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    p.add_argument("--cache", help="cache file (default OUT/cache.sqlite)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rewardsmith.errors import RewardsmithError
    from rewardsmith.judge import make_client
    from rewardsmith.synth.pipeline import judge_human_pairs

    if args.limit is not None and args.limit < 1:
        raise RewardsmithError(f"--limit {args.limit}: must be 1 or more")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    judge = make_client(args.judge, cache=args.cache or out / "cache.sqlite",
                        concurrency=args.concurrency, timeout=args.timeout)
    load_options = {k: v for k, v in (("format", args.format), ("preset", args.preset), ("split", args.split)) if v}
    summary = judge_human_pairs(judge, args.dataset, args.limit, args.max_tokens, out / "verdicts.jsonl", **load_options)
    report = {**summary, "requests": judge.counters.to_dict()}
    (out / "judge_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0
