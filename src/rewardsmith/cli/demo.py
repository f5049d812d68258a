"""`rewardsmith demo`: the whole recipe end to end on the embedded models (see rewardsmith.demo)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole recipe end to end on the embedded models (~10 min on 2 CPU cores)",
        description="Prepare the embedded models, take real preference pairs (local, else the Hugging Face hub), "
                    "synthesise judged pairs, train a reward model, evaluate it with intervals beside the length "
                    "baselines, run the probe suite, score the cards' examples and serve it over HTTP.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  rewardsmith demo\n"
               "  rewardsmith demo --out demo-out --data ../shared/data --train-steps 300\n"
               "  rewardsmith demo --hub-mirror /data/hf-mirror      # local copies laid out as OWNER/NAME\n\n"
               "Data, in order: --data (or $REWARDSMITH_SHARED_DATA, or ../shared/data beside a checkout);\n"
               "else a seeded sample of the cards' sets from the Hugging Face hub (cached in\n"
               "$REWARDSMITH_HOME/demo-data); else, offline (or HF_HUB_OFFLINE=1), its own synthesised pairs,\n"
               "and it says so.",
    )
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--data", default=None, help="folder of real preference data (default: ../shared/data if present)")
    p.add_argument("--hub-mirror", type=Path, default=None, metavar="DIR",
                   help="local copies of the hub sets as DIR/<owner>/<name>, read instead of the hub")
    p.add_argument("--no-hub", action="store_true", help="do not look for the Hugging Face hub")
    p.add_argument("--train-steps", type=int, default=None,
                   help="optimizer steps of 16 pairs (default: 250 where the CPU/GPU has bf16 matmul, else 80 in fp32)")
    p.add_argument("--test-per-source", "--test-per-language", type=int, default=None,
                   help="held-out test pairs per table column (default: 300)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from rewardsmith.demo import DemoConfig, find_data_dir, run_demo

    # An explicit --hub-mirror wins over ../shared/data found beside a checkout (not over --data).
    data_dir = find_data_dir(args.data) if args.data or not args.hub_mirror else None
    run_demo(DemoConfig(out=Path(args.out), data_dir=data_dir, train_steps=args.train_steps,
                        test_per_source=args.test_per_source, hub=not args.no_hub, hub_mirror=args.hub_mirror))
    return 0
