"""`rewardsmith best-of-n-eval`: win rate of a reward model's best-of-n pick over a random pick, as judged."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rewardsmith.errors import RewardsmithError

if TYPE_CHECKING:
    from rewardsmith.synth.responses import Sampling

EPILOG = """\
For every prompt, N responses are sampled from --generator, the reward model picks its best, and
--judge compares that pick with a random one of the same N, in both orders. The win rate (0.5 = no
better than chance) comes with a 95% bootstrap interval over prompts and the judge's position
consistency: when the judge's two orders agree on fewer than 60% of the pairs, the report says it is
too weak to decide.

prompts file (JSON lines): {"id": .., "prompt": text or [{"role", "content"}], "language": "ja"|"ko"|"en"}
("messages" may stand for "prompt"; the language picks the judge prompt, English when absent)
output: OUT/report.json (the figures), OUT/details.jsonl (per prompt: responses, rewards, picks, verdict),
        OUT/cache.sqlite (every generation and verdict: a re-run or a larger --limit reuses them)

examples:
  rewardsmith best-of-n-eval out/rm prompts.jsonl --out eval/bon --n 4 \\
      --generator local:smollm2-135m-instruct --judge local:smollm2-135m-instruct
  rewardsmith best-of-n-eval out/rm prompts.jsonl --out eval/bon --n 8 \\
      --generator openai:qwen@http://127.0.0.1:8080/v1 --judge openai:gpt-4o-mini@https://api.openai.com/v1
"""


@dataclass(frozen=True)
class BestOfNEvalConfig:
    model: str
    prompts: Path
    out: Path
    generator: str
    judge: str
    sampling: "Sampling"
    concurrency: int
    limit: int | None
    seed: int
    judge_max_tokens: int

    def check(self) -> "BestOfNEvalConfig":
        from rewardsmith.cli.label import sampling_problems

        problems = sampling_problems(self.sampling, self.concurrency)
        if not self.prompts.is_file():
            problems.append(f"{self.prompts}: no such file")
        if self.limit is not None and self.limit < 1:
            problems.append(f"--limit {self.limit}: must be at least 1")
        if self.judge_max_tokens < 1:
            problems.append("--judge-max-tokens must be at least 1")
        if problems:
            raise RewardsmithError("best-of-n-eval: " + "; ".join(problems))
        return self


def register(subparsers) -> None:
    from rewardsmith.cli.label import add_sampling_options
    from rewardsmith.cli.score import _common

    p = subparsers.add_parser(
        "best-of-n-eval", help="win rate of the reward model's best-of-n pick against a random pick, as judged",
        description="Evaluate a reward model by best-of-n sampling: does its favourite of N samples beat a "
                    "random one of them, in an LLM judge's eyes?",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="reward model folder (or embedded name / hub id)")
    p.add_argument("prompts", type=Path, help="JSONL of prompts (see below)")
    p.add_argument("--out", type=Path, required=True, help="output folder (report, details, cache)")
    p.add_argument("--generator", required=True, help="backend spec that samples the responses: openai:MODEL@URL, "
                                                      "local:NAME (see `rewardsmith synth --help`)")
    p.add_argument("--judge", required=True, help="judge backend spec; ?mode=logprobs or ?mode=text as in "
                                                  "`rewardsmith judge`")
    p.add_argument("--limit", type=int, help="use the first N prompts")
    p.add_argument("--seed", type=int, default=0, help="seed of the random picks and the bootstrap (default 0)")
    p.add_argument("--judge-max-tokens", type=int, default=16, help="judge reply limit in tokens (default 16)")
    add_sampling_options(p)
    _common(p)
    p.set_defaults(func=_run)


def _prompts(path: Path, limit: int | None):
    from rewardsmith.data.common import BadRow, normalize_language, row_prompt
    from rewardsmith.data.files import iter_jsonl
    from rewardsmith.evaluate.best_of_n import Prompt

    out = []
    for number, row in iter_jsonl(path):
        if limit is not None and len(out) == limit:
            break
        try:
            conversation = row_prompt(row, "generated responses")
        except BadRow as e:
            raise RewardsmithError(f"{path}:{number}: {e.detail or e.reason}; see `rewardsmith best-of-n-eval "
                                   "--help`") from None
        out.append(Prompt(str(row.get("id", f"{path.name}:{number}")), conversation,
                          normalize_language(row.get("language"))))
    if not out:
        raise RewardsmithError(f"{path}: no prompts")
    return out


def _run(args) -> int:
    from rewardsmith.cli.label import sampling_from
    from rewardsmith.cli.score import _scorer
    from rewardsmith.evaluate.best_of_n import best_of_n_eval
    from rewardsmith.judge import Cache, Client
    from rewardsmith.judge.backends import load_backend

    c = BestOfNEvalConfig(model=args.model, prompts=args.prompts, out=args.out, generator=args.generator,
                          judge=args.judge, sampling=sampling_from(args), concurrency=args.concurrency,
                          limit=args.limit, seed=args.seed, judge_max_tokens=args.judge_max_tokens).check()
    prompts = _prompts(c.prompts, c.limit)
    c.out.mkdir(parents=True, exist_ok=True)
    cache = Cache(c.out / "cache.sqlite")  # one file for both: a request's key names its model
    generator = Client(load_backend(c.generator, concurrency=c.concurrency), cache)
    judge = generator if c.judge == c.generator else Client(load_backend(c.judge, concurrency=c.concurrency), cache)
    report, details = best_of_n_eval(prompts, _scorer(args), generator, judge, c.sampling, seed=c.seed,
                                      judge_max_tokens=c.judge_max_tokens)
    result = {"model": c.model, "generator": c.generator, "judge": c.judge, **report.to_dict(),
              "requests": {"generator": generator.counters.to_dict(), "judge": judge.counters.to_dict()}}
    (c.out / "report.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    with (c.out / "details.jsonl").open("w", encoding="utf-8") as f:
        for row in details:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(report.conclusion)
    print(f"wins {report.wins}, losses {report.losses}, ties {report.ties}, same answer {report.same_answer}, "
          f"judge failures {report.judge_failures}, generation failures {report.generation_failures}; "
          f"report: {c.out / 'report.json'}")
    return 0
