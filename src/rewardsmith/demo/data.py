"""Where the demo's preference pairs come from, in this order:

1. local   `--data DIR` / `$REWARDSMITH_SHARED_DATA` / `../shared/data` beside a checkout: the
           project's real sets (Korean and Japanese helpfulness labelled by LLM judges, English
           helpfulness and harmlessness labelled by people), each split by prompt.
2. hub     otherwise the Hugging Face hub, checked once (`hub_reachable`, a few seconds at most):
           a seeded sample of the sets the cards name (HUB_TRAIN), the cards' own test sets held
           out (HUB_TEST: HelpSteer3 ja/ko/en single-turn, no ties), cached under
           $REWARDSMITH_HOME/demo-data so a second run downloads nothing. `--hub-mirror DIR` reads
           local copies laid out as DIR/<owner>/<name> instead (a firewalled site's mirror; the tests).
3. synthetic  when neither is there (or HF_HUB_OFFLINE=1): the demo's own judged pairs, which show
           the pipeline working and say so.

Every split is by whole prompts: no test prompt is ever trained on.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rewardsmith.data.record import PreferencePair
from rewardsmith.errors import RewardsmithError

TEST_FRACTION = 0.15  # of each local source's prompts, held out for the demo's table
SEED = 0


@dataclass
class DemoData:
    """The files the demo trains and tests on. train/test: name -> JSONL of PreferencePairs; the test
    names are the table's columns. `options`: name -> extra settings of that file's training data
    entry (a `DataSpec` field, e.g. baseline_chosen_share). `origin` is "local", "hub" or
    "synthetic"; `lines` say what was used, with counts, for the start and the end of the run."""

    origin: str
    train: dict[str, Path]
    test: dict[str, Path]
    val: dict[str, Path] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    options: dict[str, dict] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return sum(_count(f) for f in self.train.values())


def _count(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


@dataclass(frozen=True, eq=False)
class Source:
    """One set the demo reads. `load(root)` returns its pairs; `train` / `test` are how many pairs of
    each side to take (seeded samples; 0 = none). Columns are named `{language}-{objective}-{labeler}`."""

    language: str
    objective: str
    labeler: str
    load: Callable[[Path], list[PreferencePair]]
    train: int
    test: int
    what: str  # one line for the run's log: the set and why it is here
    column: str | None = None  # the file's (and the table column's) name; default language-objective-labeler
    options: dict = field(default_factory=dict)  # extra settings of its training data entry

    @property
    def name(self) -> str:
        return self.column or f"{self.language}-{self.objective}-{'judges' if self.labeler == 'llm-judge' else 'human'}"


def _local(*paths: str, objective: str | None = None) -> Callable[[Path], list[PreferencePair]]:
    def load(root: Path) -> list[PreferencePair]:
        from rewardsmith.data import load_pairs

        return [p for path in paths for p in load_pairs(str(root / path), objective=objective).pairs]

    return load


# ../shared/data: Korean and Japanese helpfulness as LLM judges labelled it (the Japanese card's kind
# of data), English helpfulness and harmlessness as people labelled it. Sizes: DEMO_RECIPE's budget.
LOCAL: tuple[Source, ...] = (
    # Every ko-llm-judged pair has claude-3.7-sonnet's answer on one side, chosen in 69% of them: the
    # training side is balanced to half (about 1,700 of 2,800 kept), or the model learns that style.
    # No margins from the judges' strength here (the quality recipe has them): at the demo's seed they
    # cost the Korean refusal probes (18/24 against 23/24) and the card's example (docs/training.md).
    Source("ko", "helpfulness", "llm-judge", _local("ko-llm-judged", objective="helpfulness"), 2800, 300,
           "ko-llm-judged: Korean Arena-Hard answers judged pairwise by three LLMs, split by question",
           options={"baseline_chosen_share": 0.5}),
    Source("ja", "helpfulness", "llm-judge", _local("ja-llm-judged", objective="helpfulness"), 1300, 300,
           "ja-llm-judged: Rakuda, Japanese MT-Bench and ELYZA-tasks answers judged by GPT-4-class models"),
    Source("en", "helpfulness", "human",
           _local(*(f"hh-rlhf-test/{s}.test.jsonl.gz" for s in ("helpful-base", "helpful-online",
                                                                "helpful-rejection-sampled"))), 1100, 300,
           "hh-rlhf helpful subsets: crowdworkers' pairwise choices"),
)


def local_data(root: Path, out: Path, sources: tuple[Source, ...] = LOCAL, test_per_source: int | None = None
               ) -> DemoData:
    """Each source split by prompt (TEST_FRACTION of its prompts held out), sampled, written to `out`."""
    from rewardsmith.train.data import sample, split_by_prompt

    data = DemoData("local", {}, {})
    for src in sources:
        train, test = split_by_prompt(src.load(root), TEST_FRACTION, SEED)
        _write(data, src, sample(train, src.train, SEED), sample(test, test_per_source or src.test, SEED), out)
    return data


def _write(data: DemoData, src: Source, train: list[PreferencePair], test: list[PreferencePair], out: Path) -> None:
    from rewardsmith.data.save import save_pairs

    if src.train:
        if not train:
            raise RewardsmithError(f"demo data: {src.what}: no training pairs were left")
        data.train[src.name] = save_pairs(train, out / f"train-{src.name}.jsonl")
        data.options[src.name] = dict(src.options)
    if src.test:
        if not test:
            raise RewardsmithError(f"demo data: {src.what}: no held-out test pairs were left")
        data.test[src.name] = save_pairs(test, out / f"test-{src.name}.jsonl")
    data.lines.append(f"{src.name}: {len(train) if src.train else 0} train, {len(test) if src.test else 0} "
                      f"held-out test pairs ({src.what})")


# ---------------------------------------------------------------------------------------------
# The hub: the sets the cards name.

def _hub(hub_id: str, *, preset: str | None = None, format: str | None = None, split: str | None = None,
         language: str | None = None, keep: Callable[[PreferencePair], bool] = lambda p: True
         ) -> Callable[[Path | None], list[PreferencePair]]:
    """A loader reading `hub_id` from the hub, or from `mirror/<owner>/<name>` when a mirror is given."""

    def load(mirror: Path | None) -> list[PreferencePair]:
        from rewardsmith.data import load_pairs

        name, _, config = hub_id.partition(":")
        source = None if preset else hub_id
        if mirror is not None:
            if not (mirror / name).exists():
                raise RewardsmithError(f"--hub-mirror {mirror}: no {name}/ inside (a copy of the hub set {hub_id})")
            # The hub keeps a config's files in a folder of its name (HelpSteer3: preference/).
            source = str(mirror / name / config if config and (mirror / name / config).is_dir() else mirror / name)
        if preset:
            pairs = load_pairs(source, preset=preset, split=split, language=language).pairs
        else:
            pairs = load_pairs(source, format=format, split=split, language=language).pairs
        return [p for p in pairs if keep(p)]

    return load


def _multi_turn_no_tie(p: PreferencePair) -> bool:
    return len(p.prompt) > 1 and not p.label_info.get("tie")


HELPSTEER3 = "nvidia/HelpSteer3:preference"
# Held out: the cards' kind of test set, HelpSteer3 single-turn without ties (the Japanese card's
# filter, applied to ja, ko and en alike).
HUB_TEST: tuple[Source, ...] = tuple(
    Source(lang, "helpfulness", "human", _hub(HELPSTEER3, preset=f"helpsteer3-{lang}"), 0, n,
           f"HelpSteer3 {lang}, single-turn, no ties (train + validation): people's preferences, the card's test",
           f"helpsteer3-{lang}-helpfulness-human")
    for lang, n in (("ja", 300), ("ko", 300), ("en", 300)))
# Trained on: HelpSteer3's multi-turn pairs (never single-turn: those are the test) and the other
# sets the cards name, human-labelled where such sets exist.
HUB_TRAIN: tuple[Source, ...] = (
    Source("ja", "helpfulness", "human", _hub(HELPSTEER3, format="helpsteer3", split="train+validation",
                                              language="ja", keep=_multi_turn_no_tie), 1000, 0,
           "HelpSteer3 ja, multi-turn, no ties: people's preferences"),
    Source("ja", "general", "human", _hub("llm-jp/llm-jp-chatbot-arena-conversations", preset="llm-jp-arena",
                                          language="ja"), 800, 0,
           "llm-jp chatbot arena, first turn, a clear winner: people's votes"),
    Source("ko", "helpfulness", "human", _hub(HELPSTEER3, format="helpsteer3", split="train+validation",
                                              language="ko", keep=_multi_turn_no_tie), 1000, 0,
           "HelpSteer3 ko, multi-turn, no ties: people's preferences"),
    Source("ko", "helpfulness", "human", _hub("heegyu/hh-rlhf-ko", preset="hh-rlhf-ko-helpful", split="train"),
           800, 0, "hh-rlhf-ko helpful subsets (train split): English crowdworkers' choices, translated"),
    Source("ko", "general", "llm-judge", _hub("maywell/ko_Ultrafeedback_binarized", preset="ko-ultrafeedback-binarized"),
           800, 0, "ko_Ultrafeedback_binarized: GPT-4 ratings, translated"),
    Source("en", "helpfulness", "human", _hub(HELPSTEER3, format="helpsteer3", split="train+validation",
                                              language="en", keep=_multi_turn_no_tie), 1000, 0,
           "HelpSteer3 en, multi-turn, no ties: people's preferences"),
)
HUB_CACHE_VERSION = "hub-v1"  # bump when HUB_TRAIN / HUB_TEST change: a cached sample is then remade


def hub_reachable(timeout: float = 5.0) -> tuple[bool, str]:
    """(reachable, why not): HF_HUB_OFFLINE, else one HEAD request to the hub's API."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False, "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        request = urllib.request.Request(f"{endpoint}/api/datasets/nvidia/HelpSteer3", method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return True, ""
    except Exception as e:  # DNS failure, refused, timeout, proxy error: all mean "not from here"
        return False, f"{endpoint} did not answer ({type(e).__name__}: {str(e)[:120]})"


def hub_data(cache: Path, mirror: Path | None = None, test_per_source: int | None = None) -> DemoData:
    """The hub sample, made once into `cache` (a second run reuses it) and used from there."""
    from rewardsmith.train.data import sample

    done = cache / "sources.json"
    if not done.is_file():
        tmp = DemoData("hub", {}, {})
        test_pairs: list[PreferencePair] = []
        for src in HUB_TEST:
            pairs = sample(src.load(mirror), test_per_source or src.test, SEED)
            test_pairs += pairs
            _write(tmp, src, [], pairs, cache)
        # A training pair never shares its first user turn with a test prompt.
        held = {json.dumps(p.prompt[0], sort_keys=True, ensure_ascii=False) for p in test_pairs}
        by_name: dict[str, list[PreferencePair]] = {}
        for src in HUB_TRAIN:
            pairs = [p for p in src.load(mirror) if json.dumps(p.prompt[0], sort_keys=True, ensure_ascii=False)
                     not in held]
            by_name.setdefault(src.name, []).extend(sample(pairs, src.train, SEED))
            tmp.lines.append(f"{src.name}: {min(len(pairs), src.train)} train pairs ({src.what})")
        from rewardsmith.data.save import save_pairs

        for name, pairs in by_name.items():
            tmp.train[name] = save_pairs(pairs, cache / f"train-{name}.jsonl")
        done.write_text(json.dumps({"train": {k: str(v) for k, v in tmp.train.items()},
                                    "test": {k: str(v) for k, v in tmp.test.items()}, "lines": tmp.lines},
                                   ensure_ascii=False, indent=1), encoding="utf-8")
    saved = json.loads(done.read_text(encoding="utf-8"))
    data = DemoData("hub", {k: Path(v) for k, v in saved["train"].items()},
                    {k: Path(v) for k, v in saved["test"].items()}, lines=list(saved["lines"]))
    data.lines.append(f"(sampled once into {cache}; delete it to sample again)")
    return data


def describe(data: DemoData) -> str:
    """Counts per language and objective of the training files, for the closing lines."""
    from rewardsmith.data import load_pairs

    mix = Counter()
    for f in data.train.values():
        for p in load_pairs(str(f)).pairs:
            mix[f"{p.language} {p.objective}"] += 1
    return ", ".join(f"{k} {n}" for k, n in sorted(mix.items()))
