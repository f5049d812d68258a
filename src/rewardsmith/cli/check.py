"""`rewardsmith check MODEL`: the shipped probe suite — which rule did this reward model learn?"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EPILOG = """\
examples:
  rewardsmith check runs/e5
  rewardsmith check runs/e5 --language ko --show-failures
  rewardsmith check runs/e5 --out runs/e5/probes.json

Each probe is a pair we wrote by hand, where we know which answer is better: a helpful answer vs a
refusal of a harmless request, vs the same answer cut off, vs an answer to another question, vs the
answer in another language, vs the answer with a factual error, vs a worse answer padded to look
thorough; and for harmful requests, the refusal vs the compliance. Pass rate per kind x language.
"""


def register(subparsers) -> None:
    from rewardsmith.evaluate.probes import KINDS, LANGUAGES

    p = subparsers.add_parser("check", help="probe suite: pass rates on hand-written ja/ko/en pairs per kind",
                              description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="reward model folder, embedded name or hub id")
    p.add_argument("--language", action="append", choices=LANGUAGES, help="only these languages (repeat; default all)")
    p.add_argument("--kind", action="append", choices=KINDS, help="only these probe kinds (repeat; default all)")
    p.add_argument("--show-failures", action="store_true", help="print every failed probe with both rewards")
    p.add_argument("--out", type=Path, help="write every probe with its rewards as JSON")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="scoring precision (default auto: bf16 where the hardware has it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rewardsmith.evaluate.probes import KINDS, LANGUAGES, check_model

    result = check_model(args.model, tuple(args.language or LANGUAGES), tuple(args.kind or KINDS), args.precision)
    print(result.markdown())
    if args.show_failures:
        for probe, rb, rw in result.failures():
            print(f"FAIL {probe.language} {probe.id}: better {rb:+.3f} <= worse {rw:+.3f}: {probe.worse[:80]!r}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    return 0
