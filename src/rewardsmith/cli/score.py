"""`rewardsmith score`, `compare` and `best-of-n`: score responses with a reward model."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardsmith.data.files import cut_torn_last_line, iter_jsonl
from rewardsmith.data.textfile import GzipBroken
from rewardsmith.errors import RewardsmithError, is_disk_full

CHUNK = 512  # rows scored (and written) at a time: results reach OUT as the run goes

SCORE_EPILOG = """\
input rows (JSON lines), either kind per line; text or [{"role", "content"}] messages alike:
  a preference pair   {"id": .., "prompt": .., "chosen": .., "rejected": ..}, or TRL's implicit prompt:
                      {"chosen": [messages], "rejected": [messages]} (read as `rewardsmith data` reads them)
  a response          {"prompt": .., "response": ..}  (or "completion", TRL's name; or "messages" for "prompt"),
                      or {"messages": [.., {"role": "assistant", "content": ..}]}: the last turn is scored
output rows: {"line": N, "id": .., "score": r}  or  {"line": N, "id": .., "chosen_score": .., "rejected_score": ..}
A rerun with the same -o skips the lines already written there (resume after an interruption).

examples:
  rewardsmith score out/rm pairs.jsonl -o scores.jsonl
  rewardsmith score out/rm answers.jsonl --precision fp32 --token-budget 8192 > scores.jsonl
  rewardsmith score out/rm big.jsonl -o scores.jsonl --compile
"""


@dataclass(frozen=True)
class ScoreConfig:
    model: str
    input: Path
    output: Path | None
    precision: str
    token_budget: int | None  # None: the Scorer's default for the device
    keep_partial: bool = False  # a broken .gz input: score the rows before the break instead of refusing it


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="score every row of a JSONL file (pairs: both sides)",
        description="Score responses in a JSONL file with a reward model; results are written as they come.",
        epilog=SCORE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="reward model folder (or hub id)")
    p.add_argument("file", type=Path, help="JSONL input (gzipped when it ends in .gz)")
    p.add_argument("-o", "--output", type=Path, help="JSONL output (appended to; rows already there are skipped)")
    p.add_argument("--keep-partial", action="store_true",
                   help="a .gz input cut short or corrupt: score the rows before the break (and say where it "
                        "broke) instead of stopping with an error before scoring anything")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the forward pass, after a one-time compile of 1-2 minutes; the gain depends "
                        "on the CPU and the model, from none to 1.5x (docs/benchmarks.md): for thousands of rows")
    _common(p)
    p.set_defaults(func=_run_score)

    _prompt_command(
        subparsers, "compare", func=_run_compare, help="P(A better than B) for two responses to one prompt",
        description="Print P(A is better than B) = sigmoid(r_A - r_B) and both rewards.",
        example='rewardsmith compare out/rm --prompt "卵のゆで方は?" "9分ゆでます。" "知りません。"',
        prompt_help="the user turn both responses answer",
        responses={"a": {"help": "response A"}, "b": {"help": "response B"}})
    _prompt_command(
        subparsers, "best-of-n", func=_run_best_of_n, help="rank several responses to one prompt, best first",
        description="Rank responses to one prompt by reward, best first.",
        example='rewardsmith best-of-n out/rm --prompt "광화문에 어떻게 가나요?" "5호선을 타세요." "몰라요." "걸어가세요."',
        prompt_help="the user turn the responses answer",
        responses={"responses": {"nargs": "+", "help": "the candidate responses"}})


def _prompt_command(subparsers, name: str, *, func, help: str, description: str, example: str,
                    prompt_help: str, responses: dict[str, dict[str, Any]]) -> None:
    """A command that scores responses to one user turn: `NAME MODEL --prompt TEXT RESPONSE...`."""
    p = subparsers.add_parser(name, help=help, description=description, epilog=f"example:\n  {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="reward model folder (or hub id)")
    p.add_argument("--prompt", required=True, help=prompt_help)
    for dest, kwargs in responses.items():
        p.add_argument(dest, **kwargs)
    _common(p)
    p.set_defaults(func=func)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 weights where the hardware has bf16 units, else fp32 (default auto)")
    p.add_argument("--token-budget", type=int, default=None,
                   help="padded tokens per batch, rows x longest; does not change scores (default: 2048 on CPU, "
                        "where small batches stay in cache; 16384 on GPU)")


def _scorer(args):
    from transformers.utils import logging as hf_logging

    from rewardsmith.models import load_reward_model
    from rewardsmith.score import Scorer, scoring_dtype

    hf_logging.disable_progress_bar()  # "Loading weights" bars would bury the scoring progress
    rm = load_reward_model(args.model, dtype=scoring_dtype(args.precision))
    return Scorer(rm, token_budget=args.token_budget, precision=args.precision,
                  compile=getattr(args, "compile", False))


def _items(path: Path, number: int, row: dict) -> list[tuple[list[dict], str]]:
    """The (conversation, response) items a row asks for: two for a pair, one for a response.
    Pairs are read by the data layer's reader for TRL's layouts, so a file that `rewardsmith data`
    reads scores here too; a row it cannot use stops the run, naming the line, field and fix."""
    from rewardsmith.data.common import BadRow, response_item

    where = f"{path}:{number}"
    try:
        if "chosen" in row and "rejected" in row:
            from rewardsmith.data.common import RowContext
            from rewardsmith.data.readers import read_preference
            from rewardsmith.data.report import DropReport

            ctx = RowContext(where=where, index=number, source=path.name, subset=None, language=None)
            pair = next(read_preference(row, ctx, DropReport()))
            return [pair.chosen_conversation(), pair.rejected_conversation()]
        return [response_item(row)]
    except BadRow as e:
        raise RewardsmithError(f"{where}: {e.detail or e.reason}; see `rewardsmith score --help`") from None


def _done_lines(output: Path | None) -> set[int]:
    """Input line numbers already in `output`. A last row cut short by an interruption (no final
    newline) is removed, so it is scored again rather than appended to."""
    if output is None or not output.exists():
        return set()
    cut_torn_last_line(output)
    done = set()
    for number, row in iter_jsonl(output):
        if "line" not in row:
            raise RewardsmithError(f"{output}:{number}: not a `rewardsmith score` output row (no 'line'); "
                                   "choose another -o file")
        done.add(row["line"])
    return done


def score_file(config: ScoreConfig, scorer, *, out=None, progress: bool = False) -> int:
    """Score config.input into config.output (or `out`), skipping lines already there; returns rows written.
    Raises RewardsmithError when the disk fills up: the rows written stay, the rerun resumes after them."""
    try:
        return _score_file(config, scorer, out, progress)
    except OSError as e:
        if config.output is None or not is_disk_full(e):
            raise
        raise RewardsmithError(
            f"-o {config.output}: no space left on the device ({e.strerror}); the rows already written there are "
            "intact (a last row cut short is removed on the rerun). Free space and rerun the same command: "
            "it scores only the lines not written yet") from None


def _score_file(config: ScoreConfig, scorer, out, progress: bool) -> int:
    done = _done_lines(config.output)
    cuts: list[GzipBroken] = []
    lines = iter_jsonl(config.input, cuts.append if config.keep_partial else None)  # refuses a broken .gz now
    sink = config.output.open("a", encoding="utf-8") if config.output else (out or sys.stdout)
    written = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="row", desc="scoring", initial=len(done))
    try:
        chunk: list[tuple[int, dict, list]] = []
        rows = ((n, r) for n, r in lines if n not in done)
        for n, row in rows:
            chunk.append((n, row, _items(config.input, n, row)))
            if len(chunk) == CHUNK:
                written += _flush(chunk, scorer, sink, bar)
                chunk = []
        if chunk:
            written += _flush(chunk, scorer, sink, bar)
        for cut in cuts:
            print(f"warning: {cut.path}:{cut.line}: {cut.detail}; scored the lines before it, the rest of the "
                  "file is lost", file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
        if config.output:
            sink.close()
    return written


def _flush(chunk, scorer, sink, bar) -> int:
    rewards = iter(scorer.score([item for _, _, items in chunk for item in items]))
    for number, row, items in chunk:
        result: dict[str, Any] = {"line": number}
        if "id" in row:
            result["id"] = row["id"]
        if len(items) == 2:
            result["chosen_score"], result["rejected_score"] = next(rewards), next(rewards)
        else:
            result["score"] = next(rewards)
        sink.write(json.dumps(result, ensure_ascii=False) + "\n")
    sink.flush()
    if bar is not None:
        bar.update(len(chunk))
    return len(chunk)


def _run_score(args) -> int:
    config = ScoreConfig(model=args.model, input=args.file, output=args.output, precision=args.precision,
                         token_budget=args.token_budget, keep_partial=args.keep_partial)
    if not config.input.is_file():
        raise RewardsmithError(f"{config.input}: no such file")
    if config.output and config.output.suffix.lower() == ".gz":
        raise RewardsmithError(f"-o {config.output}: results are appended as plain JSON lines (so an interrupted "
                               "run resumes); name it .jsonl and compress it afterwards")
    written = score_file(config, _scorer(args), progress=sys.stderr.isatty())
    print(f"scored {written} rows" + (f" into {config.output}" if config.output else ""), file=sys.stderr)
    return 0


def _run_compare(args) -> int:
    from rewardsmith.score import preference_probability

    scorer = _scorer(args)
    conv = [{"role": "user", "content": args.prompt}]
    r_a, r_b = scorer.score([(conv, args.a), (conv, args.b)])
    p = preference_probability(r_a, r_b)  # what Scorer.compare returns, without scoring twice
    print(f"P(A better than B) = {p:.4f}   r_A = {r_a:.4f}   r_B = {r_b:.4f}")
    return 0


def _run_best_of_n(args) -> int:
    scorer = _scorer(args)
    ranked = scorer.best_of_n([{"role": "user", "content": args.prompt}], args.responses)
    for rank, (index, reward) in enumerate(ranked, 1):
        text = args.responses[index].replace("\n", " ")
        print(f"{rank}. #{index + 1}  {reward:.4f}  {text[:80]}")
    return 0
