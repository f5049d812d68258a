"""`rewardsmith data inspect | convert`: what a preference source holds, and the source in our layout."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rewardsmith.data.objectives import LABELERS, OBJECTIVES
from rewardsmith.errors import RewardsmithError

EPILOG = """\
SOURCE is a file (.jsonl .json .csv .tsv .parquet, optionally .gz), a folder (every data file in it),
a glob ("data/*.jsonl.gz"), a Hugging Face dataset id ("Anthropic/hh-rlhf", "nvidia/HelpSteer3:preference")
or a folder written by Dataset.save_to_disk. The format is detected per file unless --format is given.

examples:
  rewardsmith data inspect ../shared/data
  rewardsmith data inspect ../shared/data/hh-rlhf-test --tokenizer out/rm --max-length 1024
  rewardsmith data inspect /data/helpsteer3 --preset helpsteer3-ja --json
  rewardsmith data inspect pairs.csv --column prompt=question --column chosen=good --column rejected=bad
  rewardsmith data convert ../shared/data/ko-hh-rlhf-harmless ko-harmless.jsonl
  rewardsmith data convert Anthropic/hh-rlhf --split test hh-test.parquet
  rewardsmith data presets
"""


@dataclass(frozen=True)
class DataConfig:
    source: str | None
    format: str | None
    preset: str | None
    split: str | None
    columns: dict[str, str]
    language: str | None
    objective: str | None
    labeler: str | None
    keep_partial: bool


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data", help="inspect or convert preference data",
        description="Read preference data in any supported format; report what is kept and dropped, and why.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    q = sub.add_parser("inspect", help="pairs kept / dropped by reason, per language and subset, lengths",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_args(q)
    q.add_argument("--tokenizer", help="tokenizer or model (folder, embedded name) to count tokens with; for a "
                                       "model, pair lengths are its real input (chat template or pair encoding)")
    q.add_argument("--max-length", type=int, help="count pairs longer than this many tokens (needs --tokenizer; "
                                                  "default for a model: its max_length)")
    q.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    q.set_defaults(func=_run_inspect)

    c = sub.add_parser("convert", help="write any readable source as rewardsmith JSONL or Parquet",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_args(c)
    c.add_argument("output", type=Path, help="output file: .jsonl, .jsonl.gz or .parquet")
    c.set_defaults(func=_run_convert)

    s = sub.add_parser("presets", help="list the named presets (model-card evaluation sets)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_run_presets)


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", help="file, folder, glob or dataset id (default: the preset's hub id)")
    p.add_argument("--format", help="reader to use (default: detected per file); see `rewardsmith data presets`")
    p.add_argument("--preset", help="a named set with its card's filters, e.g. helpsteer3-ja")
    p.add_argument("--split", help='dataset split(s), e.g. "test" or "train+validation"')
    p.add_argument("--column", action="append", default=[], metavar="OURS=THEIRS",
                   help="map a column: prompt=question, chosen=good, rejected=bad (repeatable)")
    p.add_argument("--language", help="the data's language: fills rows that do not say, drops other languages")
    p.add_argument("--objective", choices=OBJECTIVES,
                   help="what the labels judged, for rows whose format does not say (known sets set their own)")
    p.add_argument("--labeler", choices=LABELERS, help="who labelled the pairs, for rows that do not say")
    p.add_argument("--keep-partial", action="store_true",
                   help="a .gz file cut short or corrupt: use the rows before the break (counted as "
                        "'file cut short') instead of stopping with an error")


def _config(args: argparse.Namespace) -> DataConfig:
    """Validate the source arguments once; every problem in one error."""
    problems = []
    columns = {}
    for item in args.column:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours or not theirs:
            problems.append(f"--column {item!r}: expected OURS=THEIRS, e.g. --column prompt=question")
        else:
            columns[ours.strip()] = theirs.strip()
    if args.source is None and args.preset is None:
        problems.append("give a SOURCE or a --preset")
    if getattr(args, "max_length", None) is not None and not getattr(args, "tokenizer", None):
        problems.append("--max-length counts tokens: give --tokenizer too")
    if problems:
        raise RewardsmithError("; ".join(problems))
    return DataConfig(args.source, args.format, args.preset, args.split, columns, args.language, args.objective,
                      args.labeler, args.keep_partial)


def _load(cfg: DataConfig):
    from rewardsmith.data import load_pairs

    return load_pairs(cfg.source, format=cfg.format, split=cfg.split, columns=cfg.columns or None,
                      preset=cfg.preset, language=cfg.language, objective=cfg.objective, labeler=cfg.labeler,
                      keep_partial=cfg.keep_partial)


def _run_inspect(args: argparse.Namespace) -> int:
    from rewardsmith.data.stats import length_stats

    cfg = _config(args)
    t0 = time.perf_counter()
    result = _load(cfg)
    seconds = time.perf_counter() - t0
    tokenizer, input_length, model_max = _token_counter(args.tokenizer) if args.tokenizer else (None, None, None)
    stats = length_stats(result.pairs, tokenizer, args.max_length or model_max, input_length)
    if args.json:
        out = {**result.report.to_dict(), "lengths": stats, "seconds": round(seconds, 2)}
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    print(result.report.render())
    print(f"read in {seconds:.1f}s")
    print("lengths (characters" + (", tokens" if tokenizer else "") + "): min / p50 / p90 / p99 / max / mean")
    for key, value in stats.items():
        if isinstance(value, dict) and value:
            print(f"  {key:16} " + " / ".join(f"{value[k]:g}" for k in ("min", "p50", "p90", "p99", "max", "mean")))
    if "tokens_counted" in stats:
        print(f"  pair_tokens counts the {stats['tokens_counted']}")
    if "over_max_length" in stats:
        print(f"pairs over {stats['max_length']} tokens: {stats['over_max_length']} of {stats['pairs']}")
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from rewardsmith.data.save import save_pairs

    cfg = _config(args)
    result = _load(cfg)
    if not result.pairs:
        raise RewardsmithError(f"{cfg.source or cfg.preset}: no pairs to write ({result.report.n_dropped} rows dropped)")
    path = save_pairs(result.pairs, args.output)
    print(result.report.render(), file=sys.stderr)
    print(f"wrote {len(result.pairs)} pairs to {path}", file=sys.stderr)
    return 0


def _run_presets(args: argparse.Namespace) -> int:
    from rewardsmith.data.formats import FORMATS
    from rewardsmith.data.presets import PRESETS

    if args.json:
        print(json.dumps([{"name": p.name, "description": p.description, "hub_id": p.hub_id, "files": p.files,
                           "format": p.format, "split": p.split, "language": p.language,
                           "filters": [f.__name__ for f in p.filters], "card": p.card, "expected": p.expected}
                          for p in PRESETS.values()], ensure_ascii=False, indent=1))
        return 0
    print("presets:")
    for p in PRESETS.values():
        steps = ", ".join([*([f"language_is({p.language})"] if p.language else []), *(f.__name__ for f in p.filters)])
        print(f"  {p.name:28} {p.description}\n  {'':28} hub: {p.hub_id or '(none: pass a local copy)'}; "
              f"filters: {steps or 'none'}")
    print("formats:")
    for f in FORMATS.values():
        print(f"  {f.name:28} {f.about}")
    return 0


def _token_counter(path: str):
    """(tokenizer, input_length, max_length) for --tokenizer. When `path` is a model (its
    rewardsmith.json, or a config.json a reward model would be initialised from), input_length
    is the length of `rewardsmith.models.encode` — the input training and scoring see — before
    truncation, and max_length the model's; for a tokenizer alone both are None (raw-text counts)."""
    import dataclasses

    from transformers import AutoConfig, AutoTokenizer

    from rewardsmith.models import encode
    from rewardsmith.models.embedded import EMBEDDED, prepare
    from rewardsmith.models.manifest import MANIFEST_NAME, Manifest

    # An embedded model's short name (`multilingual-e5-small`) means its prepared folder, as it
    # does wherever a model is asked for; anything else is a folder or a hub id.
    location = str(prepare(path)) if path in EMBEDDED and not Path(path).exists() else path
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise RewardsmithError(f"--tokenizer {path}: cannot load a tokenizer there ({str(e).splitlines()[0]})") from None
    if (Path(location) / MANIFEST_NAME).is_file():
        manifest = Manifest.load(location)
    else:
        try:
            config = AutoConfig.from_pretrained(location, trust_remote_code=False)
        except (OSError, ValueError):
            return tokenizer, None, None  # a tokenizer without a model
        manifest = Manifest.for_model(config, tokenizer, base_model=path)
    uncut = dataclasses.replace(manifest, max_length=1 << 30)  # the full length, to compare with max_length
    return tokenizer, (lambda conversation, response: len(encode(tokenizer, uncut, conversation, response))), \
        manifest.max_length
