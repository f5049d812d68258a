"""A local mirror of the hub sets `rewardsmith demo` samples, in their exact published shapes, made
from the real pairs in ../shared/data (this machine has no hub).

    python tests/hub_mirror.py OUT [--shared ../shared/data]    # then: rewardsmith demo --hub-mirror OUT

Each set is a `DatasetDict.save_to_disk` folder at OUT/<owner>/<name>[/<config>] with the hub's
splits and columns (../shared/DATASETS.md), so the demo reads it through the same `datasets` code
path as a download. The texts are real, the labels are not the hub sets' own:

    nvidia/HelpSteer3/preference  japanese / korean rows from ja-llm-judged / ko-llm-judged (LLM judges),
                                  english from the hh-rlhf helpful test files (people); single-turn rows
                                  as published, multi-turn rows made by putting an earlier exchange of
                                  the same set before the prompt; a few ties and code-domain rows
    llm-jp/llm-jp-chatbot-arena-conversations   Rakuda pairs as arena battles (first turn)
    heegyu/hh-rlhf-ko             ko-llm-judged pairs in its context/instruction/{from, value} layout
    maywell/ko_Ultrafeedback_binarized          ko-llm-judged pairs as prompt/chosen/rejected strings

Pairs are split by prompt between the sets, so no prompt appears in two of them.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from rewardsmith.data import load_pairs
from rewardsmith.train.data import prompt_hash

SIZES = {"ja_single": 350, "ja_multi": 700, "ko_single": 350, "ko_multi": 700, "en_single": 400,
         "en_multi": 800, "arena": 700, "hh_ko": 700, "ultra_ko": 700}


def build(out: Path, shared: Path, scale: float = 1.0, seed: int = 0) -> Path:
    """Write the mirror into `out` (sizes times `scale`); returns `out`."""
    from datasets import Dataset, DatasetDict

    rng = random.Random(seed)
    n = {k: max(4, int(v * scale)) for k, v in SIZES.items()}
    ja = _by_band(load_pairs(str(shared / "ja-llm-judged")).pairs, rng)
    ko = _by_band(load_pairs(str(shared / "ko-llm-judged")).pairs, rng)
    en = load_pairs(str(shared / "hh-rlhf-test"), language="en").pairs
    en_help = [p for p in en if (p.subset or "").startswith("helpful") and p.rejected_prompt is None]
    rng.shuffle(en_help)

    def hs3(p, language, domain="multilingual", context=None, tie=False):
        swap = rng.random() < 0.5
        strength = rng.choice((1, 2, 3))
        return {"domain": domain, "language": language, "context": context or p.prompt,
                "response1": p.rejected if swap else p.chosen, "response2": p.chosen if swap else p.rejected,
                "overall_preference": 0 if tie else (strength if swap else -strength),
                "individual_preference": [{"score": 0 if tie else (strength if swap else -strength),
                                           "reasoning": "mirror row"}]}

    def multi(p, earlier):
        return [*earlier.prompt, {"role": "assistant", "content": earlier.chosen[:600]}, *p.prompt]

    rows = []
    for lang, name, pool, ns, nm in (("japanese", "ja", ja, n["ja_single"], n["ja_multi"]),
                                     ("korean", "ko", ko, n["ko_single"], n["ko_multi"])):
        single, rest = pool[0][:ns], pool[1]
        rows += [hs3(p, lang, tie=i % 25 == 0) for i, p in enumerate(single)]
        rows += [hs3(p, lang, context=multi(p, rest[-1 - i])) for i, p in enumerate(rest[:nm])]
    en_single = [p for p in en_help if len(p.prompt) == 1][:n["en_single"]]
    en_multi = [p for p in en_help if len(p.prompt) > 1][:n["en_multi"]]
    rows += [hs3(p, "english", domain=rng.choice(("general", "stem")), tie=i % 25 == 0) for i, p in enumerate(en_single)]
    rows += [hs3(p, "english", domain="general") for p in en_multi]
    rows += [hs3(p, "python", domain="code") for p in en_help[-20:]]
    rng.shuffle(rows)
    cut = len(rows) * 9 // 10
    DatasetDict({"train": Dataset.from_list(rows[:cut]), "validation": Dataset.from_list(rows[cut:])}).save_to_disk(
        str(out / "nvidia" / "HelpSteer3" / "preference"))

    arena = []
    for i, p in enumerate(ja[2][:n["arena"]]):
        a_wins = rng.random() < 0.5
        conv = lambda text: [*p.prompt, {"role": "assistant", "content": text}]  # noqa: E731
        arena.append({"id": f"mirror-{i}", "model_a": "a", "model_b": "b",
                      "winner": "tie" if i % 20 == 0 else ("model_a" if a_wins else "model_b"), "judge": "mirror",
                      "conversation_a": conv(p.chosen if a_wins else p.rejected),
                      "conversation_b": conv(p.rejected if a_wins else p.chosen), "turn": 1,
                      "language": "Japanese", "tstamp": 1.7e9 + i})
    DatasetDict({"train": Dataset.from_list(arena)}).save_to_disk(
        str(out / "llm-jp" / "llm-jp-chatbot-arena-conversations"))

    def hh_ko(p, source):
        return {"context": [], "instruction": {"from": "human", "value": p.prompt[-1]["content"]},
                "chosen": {"from": "gpt", "value": p.chosen}, "rejected": {"from": "gpt", "value": p.rejected},
                "source": source}

    hk = ko[2][:n["hh_ko"]]
    cut = len(hk) * 9 // 10
    DatasetDict({"train": Dataset.from_list([hh_ko(p, "helpful-base") for p in hk[:cut]]),
                 "test": Dataset.from_list([hh_ko(p, "helpful-base") for p in hk[cut:]])}).save_to_disk(
        str(out / "heegyu" / "hh-rlhf-ko"))
    uf = ko[3][:n["ultra_ko"]]
    DatasetDict({"train": Dataset.from_list([{"prompt": p.prompt[-1]["content"], "chosen": p.chosen,
                                              "rejected": p.rejected} for p in uf])}).save_to_disk(
        str(out / "maywell" / "ko_Ultrafeedback_binarized"))
    return out


def _by_band(pairs, rng, bands=(0.25, 0.5, 0.75)) -> list[list]:
    """Four disjoint pools of pairs, whole prompts to a pool (by prompt hash), each shuffled."""
    pools: list[list] = [[] for _ in range(len(bands) + 1)]
    for p in pairs:
        h = prompt_hash(p.prompt, 11)
        pools[sum(h >= b for b in bands)].append(p)
    for pool in pools:
        rng.shuffle(pool)
    return pools


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every set's size")
    args = parser.parse_args()
    print(build(args.out, args.shared, args.scale))
