"""`rewardsmith label`: score a dataset's responses; write best-of-n SFT rows, DPO pairs and a report."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rewardsmith.errors import RewardsmithError

if TYPE_CHECKING:
    from rewardsmith.synth.responses import Sampling

EPILOG = """\
input rows (JSON lines, .gz too), one kind or mixed; "prompt" is text or [{"role", "content"}] messages:
  {"prompt": .., "responses": [.., ..]}        a prompt with its candidate responses
  {"prompt": .., "response": ..}               one candidate per row (or "completion"); consecutive rows
                                               with the same prompt are one group
  {"prompt": ..}                               with --generator: N responses are sampled for it
output folder (OUT):
  sft.jsonl     the best response per prompt: {"prompt", "completion", "reward"} (TRL SFTTrainer loads it)
  dpo.jsonl     {"prompt", "chosen", "rejected", "chosen_reward", "rejected_reward"} (TRL DPOTrainer)
  report.json   counts, reward distributions, chosen-is-longer rate, everything dropped by reason
  scores.jsonl  every prompt's responses and rewards, written as it goes: a killed run resumes there
Rewards are the ones `rewardsmith score` gives. Run again with other --pairs / --min-margin to rewrite
sft/dpo/report from scores.jsonl without scoring again.

examples:
  rewardsmith label out/rm answers.jsonl --out labelled
  rewardsmith label out/rm answers.jsonl --out labelled --pairs all --min-margin 1.0
  rewardsmith label out/rm prompts.jsonl --out labelled --generator local:smollm2-135m-instruct --n 4
  rewardsmith label out/rm prompts.jsonl --out labelled --generator openai:qwen@http://127.0.0.1:8080/v1 \\
      --n 8 --temperature 1.0 --concurrency 8
"""


@dataclass(frozen=True)
class LabelConfig:
    """Validated `label` settings; every problem is reported at once."""

    model: str
    input: Path
    out: Path
    pairs: str
    min_margin: float
    generator: str | None
    sampling: "Sampling"
    concurrency: int
    keep_partial: bool = False  # a broken .gz input: label the rows before the break instead of refusing it

    def check(self) -> "LabelConfig":
        problems = sampling_problems(self.sampling, self.concurrency)
        if not self.input.is_file():
            problems.append(f"{self.input}: no such file")
        if self.min_margin < 0:
            problems.append(f"--min-margin {self.min_margin}: must be 0 or more (a pair's chosen reward is the higher)")
        if problems:
            raise RewardsmithError("label: " + "; ".join(problems))
        return self


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """How a generator samples n responses per prompt (label, best-of-n-eval)."""
    from rewardsmith.synth.responses import Sampling

    d = Sampling()
    p.add_argument("--n", type=int, default=4, help="responses sampled per prompt (default 4)")
    p.add_argument("--temperature", type=float, default=d.temperature, help=f"sampling temperature (default {d.temperature})")
    p.add_argument("--top-p", type=float, default=d.top_p, help=f"nucleus sampling (default {d.top_p})")
    p.add_argument("--max-new-tokens", type=int, default=d.max_tokens,
                   help=f"response length limit in tokens (default {d.max_tokens})")
    p.add_argument("--concurrency", type=int, default=4, help="parallel requests to a server (default 4)")


def sampling_from(args: argparse.Namespace) -> "Sampling":
    from rewardsmith.synth.responses import Sampling

    return Sampling(n=args.n, temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_new_tokens)


def sampling_problems(sampling: "Sampling", concurrency: int) -> list[str]:
    problems = []
    if sampling.n < 2:
        problems.append(f"--n {sampling.n}: best-of-n needs at least 2 responses per prompt")
    if not sampling.temperature > 0:
        problems.append(f"--temperature {sampling.temperature}: n samples at temperature 0 are one answer n times; "
                        "use more than 0")
    if not 0 < sampling.top_p <= 1:
        problems.append(f"--top-p {sampling.top_p}: must be in (0, 1]")
    if sampling.max_tokens < 1 or concurrency < 1:
        problems.append("--max-new-tokens and --concurrency must be at least 1")
    return problems


def register(subparsers) -> None:
    from rewardsmith.cli.score import _common
    from rewardsmith.label import PAIR_MODES

    p = subparsers.add_parser(
        "label", help="label a dataset with a reward model: best-of-n SFT set, DPO pairs, report",
        description="Score several responses per prompt with a reward model (or sample them from a generator "
                    "first) and write the best of n as an SFT set and chosen/rejected pairs for DPO.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="reward model folder (or embedded name / hub id)")
    p.add_argument("file", type=Path, help="JSONL input (gzipped when it ends in .gz), read as a stream")
    p.add_argument("--out", type=Path, required=True, help="output folder; an interrupted run resumes there")
    p.add_argument("--keep-partial", action="store_true",
                   help="a .gz input cut short or corrupt: label the rows before the break (and say where it "
                        "broke) instead of stopping with an error before labelling anything")
    p.add_argument("--pairs", choices=PAIR_MODES, default="best-worst",
                   help="DPO pairs per prompt: best-worst (one: highest vs lowest reward) or all (every pair of "
                        "responses whose rewards differ by at least --min-margin) (default: best-worst)")
    p.add_argument("--min-margin", type=float, default=0.0,
                   help="least reward difference of a DPO pair; pairs closer than this are counted and left out "
                        "(default 0: any difference)")
    p.add_argument("--generator", help="backend spec that samples responses for prompt-only rows: "
                                       "openai:MODEL@URL or local:NAME (see `rewardsmith synth --help`)")
    add_sampling_options(p)
    _common(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from rewardsmith.cli.score import _scorer
    from rewardsmith.data.files import iter_jsonl
    from rewardsmith.data.textfile import GzipBroken
    from rewardsmith.label import label

    config = LabelConfig(model=args.model, input=args.file, out=args.out, pairs=args.pairs,
                         min_margin=args.min_margin, generator=args.generator, sampling=sampling_from(args),
                         concurrency=args.concurrency, keep_partial=args.keep_partial).check()
    cuts: list[GzipBroken] = []
    rows = iter_jsonl(config.input, cuts.append if config.keep_partial else None)  # refuses a broken .gz now
    client = sampling = None
    if config.generator:
        from rewardsmith.judge import make_client

        config.out.mkdir(parents=True, exist_ok=True)
        client = make_client(config.generator, cache=config.out / "cache.sqlite", concurrency=config.concurrency)
        sampling = config.sampling
    scorer = _scorer(args)
    # What the rewards in OUT depend on: a resumed run must match it (see rewardsmith.label).
    run = {"model": config.model, "precision": str(scorer.dtype).removeprefix("torch."),
           "generator": config.generator, "sampling": asdict(sampling) if sampling else None}
    report = label(rows, scorer, config.out, source=str(config.input), run=run,
                   pairs=config.pairs, min_margin=config.min_margin, generator=client, sampling=sampling,
                   progress=sys.stderr.isatty())
    _print_summary(report)
    for cut in cuts:
        print(f"warning: {cut.path}:{cut.line}: {cut.detail}; labelled the lines before it, the rest of the file "
              "is lost", file=sys.stderr)
    return 0


def _print_summary(report: dict) -> None:
    r = report
    lines = [f"prompts: {r['prompts']['read']} read, {r['prompts']['labelled']} labelled; responses: "
             f"{r['responses']['scored']} scored ({r['responses']['scored_this_run']} this run)",
             f"sft: {r['sft']['rows']} rows -> {r['sft']['file']}",
             f"dpo: {r['dpo']['pairs']} pairs ({r['dpo']['mode']}) -> {r['dpo']['file']}"]
    if r["length"]["chosen_longer_rate"] is not None:
        lines.append(f"chosen answer is the longer one in {r['length']['chosen_longer_rate']:.0%} of the pairs")
    if r["dropped"]["total"]:
        lines.append("dropped: " + ", ".join(f"{k} {v}" for k, v in r["dropped"]["by_reason"].items()))
    lines += [f"warning: {w}" for w in r["warnings"]]
    lines.append(f"report: {Path(r['sft']['file']).parent / 'report.json'}")
    print("\n".join(lines))
