"""`rewardsmith demo`: the whole recipe end to end on the embedded models (see rewardsmith.demo)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole recipe end to end on the embedded models (~15 min on 2 CPU cores)",
        description="Prepare the embedded models, synthesise judged pairs, train a reward model on real pairs, "
                    "evaluate it with intervals, score the cards' examples and serve it over HTTP.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  rewardsmith demo\n"
               "  rewardsmith demo --out demo-out --data ../shared/data --train-steps 300\n\n"
               "Without real data (--data, $REWARDSMITH_SHARED_DATA or ../shared/data) it trains and\n"
               "evaluates on its own synthesised pairs and says so.",
    )
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--data", default=None, help="folder of real preference data (default: ../shared/data if present)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="optimizer steps of 16 pairs (default: 250 where the CPU/GPU has bf16 matmul, else 80 in fp32)")
    p.add_argument("--test-per-language", type=int, default=300, help="held-out test pairs per language (default: 300)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from rewardsmith.demo import DemoConfig, find_data_dir, run_demo

    run_demo(DemoConfig(out=Path(args.out), data_dir=find_data_dir(args.data), train_steps=args.train_steps,
                        test_per_language=args.test_per_language))
    return 0
