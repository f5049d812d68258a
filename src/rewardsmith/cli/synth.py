"""`rewardsmith synth STAGE`: build judge-labelled preference pairs (instructions -> responses -> pairs -> judge)."""

from __future__ import annotations

import argparse
import json

EPILOG = """\
stages (each reads the previous stage's file from --out; `run` does all four):
  instructions   seeds / files / synthesis, de-duplicated   -> instructions.jsonl
  responses      N samples per instruction per generator     -> responses.jsonl
  pairs          candidate pairs of different responses      -> candidates.jsonl
  judge          both-order judging                          -> pairs.jsonl, verdicts.jsonl

examples:
  # a small run on the embedded models, in-process
  rewardsmith synth run --out runs/synth --limit-per-language 3 \\
      --generator local:smollm2-135m-instruct --judge local:smollm2-135m-instruct

  # against an OpenAI-compatible server (llama.cpp: scripts/llama_server.sh)
  rewardsmith synth run --out runs/synth --generator openai:smollm2@http://127.0.0.1:8080/v1 \\
      --judge openai:smollm2@http://127.0.0.1:8080/v1 --concurrency 2

  # options from a file (keys are the long option names with _), flags override it
  rewardsmith synth judge --config synth.yaml --out runs/synth --keep-ties

A killed run resumes where it stopped: every request's result is in OUT/cache.sqlite.
"""

# option -> (SynthConfig field, type, help); None defaults mean "from --config or the built-in default".
_OPTIONS = {
    "--languages": ("languages", lambda s: tuple(x for x in s.split(",") if x), "comma list, default ja,ko,en"),
    "--instructions": ("instructions", str, "JSONL of {instruction, language} or a preference data source (repeatable)"),
    "--limit-per-language": ("limit_per_language", int, "keep the first N given instructions per language (synthesised ones come on top)"),
    "--synthesize": ("synthesize", int, "new instructions per language written by an LLM from the seeds"),
    "--instruction-model": ("instruction_model", str, "backend spec for --synthesize (default: first generator)"),
    "--generator": ("generators", str, "backend spec of a response generator (repeatable)"),
    "--n-responses": ("n_responses", int, "samples per instruction per generator (default 2)"),
    "--temperature": ("temperature", float, "generator sampling temperature (default 0.8)"),
    "--top-p": ("top_p", float, "generator nucleus sampling (default 0.95)"),
    "--max-new-tokens": ("max_new_tokens", int, "response length limit in tokens (default 256)"),
    "--max-pairs-per-instruction": ("max_pairs_per_instruction", int, "cap candidate pairs per instruction"),
    "--judge": ("judge", str, "judge backend spec, e.g. openai:MODEL@URL or local:smollm2-135m-instruct; "
                "?mode=logprobs (local default) or ?mode=text (server default) picks how verdicts are read"),
    "--judge-max-tokens": ("judge_max_tokens", int, "judge reply limit in tokens (default 16)"),
    "--human-pairs": ("human_pairs", str, "labelled pairs: also report the judge's agreement with humans"),
    "--human-limit": ("human_limit", int, "judge at most N of --human-pairs (default 100)"),
    "--concurrency": ("concurrency", int, "parallel requests to a server (default 4)"),
    "--timeout": ("timeout", float, "seconds per request (default 120)"),
    "--max-retries": ("max_retries", int, "retries per failed request (default 2)"),
    "--cache": ("cache", str, "cache file (default OUT/cache.sqlite)"),
}
_REPEATABLE = {"--instructions", "--generator"}


def register(subparsers) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="output folder (stage files, report.json, cache)")
    common.add_argument("--config", help="YAML/JSON file of options (field names as in the long options, with _)")
    for flag, (_, type_, help_) in _OPTIONS.items():
        common.add_argument(flag, type=type_, help=help_, action="append" if flag in _REPEATABLE else "store")
    common.add_argument("--keep-ties", action="store_true", default=None, help="write ties to pairs.jsonl (margin 0)")
    common.add_argument("--no-seeds", action="store_true", help="do not include the shipped seed instructions")
    p = subparsers.add_parser("synth", help="make judge-labelled preference pairs", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              description="Synthesise pseudo-preference pairs with an LLM judge.")
    stages = p.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage in ("instructions", "responses", "pairs", "judge", "run"):
        s = stages.add_parser(stage, parents=[common], epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                              help="all four stages" if stage == "run" else f"the {stage} stage")
        s.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rewardsmith.synth.pipeline import STAGES, SynthConfig, load_config_file, run

    values = load_config_file(args.config) if args.config else {}
    for flag, (name, _, _) in _OPTIONS.items():
        v = getattr(args, flag.lstrip("-").replace("-", "_"))
        if v is not None:
            values[name] = tuple(v) if isinstance(v, list) else v
    if args.keep_ties:
        values["keep_ties"] = True
    if args.no_seeds:
        values["seeds"] = False
    values["out"] = args.out
    config = SynthConfig(**values)
    stages = STAGES if args.stage == "run" else (args.stage,)
    report = run(config, stages)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0
