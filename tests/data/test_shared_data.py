"""Every file in ../shared/data read as it is (the issue's bar), and how fast."""

from __future__ import annotations

import statistics
import time

import pytest

from rewardsmith.data import load_pairs

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def everything(shared_data):
    t0 = time.process_time()
    result = load_pairs(shared_data)
    print(f"\nread all of {shared_data}: {len(result.pairs)} pairs in {time.process_time() - t0:.1f}s CPU")
    return result


def test_hh_rlhf_all_8552_pairs_by_subset(shared_data, everything):
    hh = {sub: n for (src, sub, _), n in everything.report.kept.items() if src == "hh-rlhf"}
    # 8,552 pairs, of which 47 teach nothing and are counted (issue 27): 11 transcripts whose last
    # "Assistant:" turn is empty (4 + 4 + 3; in harmless-base the empty answer is the chosen one, preferred
    # to a home address) and 36 whose two last answers are the same text (2 + 2 + 32: "You’re welcome.").
    assert hh == {"harmless-base": 2308, "helpful-base": 2348, "helpful-online": 1132, "helpful-rejection-sampled": 2717}
    alone = load_pairs(shared_data / "hh-rlhf-test").report
    assert alone.dropped == {"empty response": 11, "chosen == rejected": 36}
    assert alone.n_kept + alone.n_dropped == 8552


def test_ja_llm_judged_25445_rows_with_label_info(everything):
    ja = [p for p in everything.pairs if p.language == "ja"]
    by_file = {}
    for p in ja:
        by_file[p.source.split("-")[0]] = by_file.get(p.source.split("-")[0], 0) + 1
    # 25,445 rows; 19 have an empty rejected answer (the judged model answered nothing: 11 in elyza-tasks-100,
    # 8 in ja-mt-bench), dropped and counted as "empty response" (issue 27).
    assert len(ja) == 25426
    assert by_file == {"rakuda": 2396, "japanese": 21522, "elyza": 1508}
    assert all(p.label_info.get("judge") and p.label_info.get("judge_type") == "llm" for p in ja)


def test_square_and_kudge_pairs(everything):
    kept = everything.report.kept_by("source")
    assert kept["square"] == 107
    square = [p for p in everything.pairs if p.source == "square"]
    assert sum(bool(p.label_info.get("unanimous")) for p in square) == 26  # as the SQuARe release says
    kudge = everything.report.kept_by("subset")
    assert (kudge["Korean-Easy"] + kudge["Korean-Hard"], kudge["English-Easy"] + kudge["English-Hard"]) == (381, 365)
    assert kudge["falseinfo"] == 54
    # the pointwise file is counted, not read: its rows are single responses
    assert everything.report.dropped["pointwise row: one response, no pair (use k2-eval-pairwise-falseinfo.csv)"] == 54


def test_ko_hh_rlhf_broken_translation_recovered_and_rest_counted(shared_data, everything):
    ko = [p for p in everything.pairs if p.source == "ko-hh-rlhf"]
    assert len(ko) >= 2100
    # The folder on its own, so that other folders' drops (ko-llm-judged's mojibake) do not count.
    alone = load_pairs(shared_data / "ko-hh-rlhf-harmless")
    assert len(alone.pairs) == len(ko)
    assert len(ko) + sum(alone.report.dropped.values()) == 2312  # every line is a pair or counted by reason
    # Line i is line i of the English file: the recovered pairs must line up with it.
    # Keyed by line (id .../N is line N + 1): the 4 English pairs with an empty answer are dropped.
    en = {int(p.id.rsplit("/", 1)[1]) + 1: p
          for p in load_pairs(shared_data / "hh-rlhf-test" / "harmless-base.test.jsonl.gz").pairs}
    both = [(p, en[p.label_info["english_line"]]) for p in ko if p.label_info["english_line"] in en]
    assert len(both) >= len(ko) - 4
    same_turns = sum(len(p.prompt) == len(e.prompt) for p, e in both)
    assert same_turns / len(both) > 0.8
    ratios = [len(p.chosen) / max(1, len(e.chosen)) for p, e in both]
    assert 0.3 < statistics.median(ratios) < 0.7  # Korean takes about half the characters of English
    assert sum(r < 0.1 or r > 3 for r in ratios) / len(ratios) < 0.02  # no answers from the wrong turn


def test_inspect_cli_reads_everything(shared_data, capsys):
    from rewardsmith.cli import main

    assert main(["data", "inspect", str(shared_data / "square-ko-ood"), "--json"]) == 0
    import json

    d = json.loads(capsys.readouterr().out)
    assert d["kept"] == 107 and d["kept_by_language"] == {"ko": 107}


@pytest.mark.parametrize("preset,folder", [("hh-rlhf", "hh-rlhf-test"), ("square", "square-ko-ood"), ("kudge", "kudge")])
def test_presets_on_the_local_copies_give_the_expected_counts(shared_data, preset, folder):
    from rewardsmith.data.presets import get_preset

    assert len(load_pairs(shared_data / folder, preset=preset).pairs) == get_preset(preset).expected
