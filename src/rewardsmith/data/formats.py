"""The table of formats: name -> reader, the columns it needs, and how it is recognised.

`detect(row, path)` picks a format from the first row's columns (and, for the broken Korean
hh-rlhf translation, the raw text). Order matters: specific layouts before the generic one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rewardsmith.data import named, readers
from rewardsmith.data.common import RowContext
from rewardsmith.data.objectives import ObjectiveRule, by_subset
from rewardsmith.data.record import PreferencePair
from rewardsmith.data.report import DropReport
from rewardsmith.errors import RewardsmithError, close_matches, lookup_name

Reader = Callable[[dict[str, Any], RowContext, DropReport], Iterator[PreferencePair]]


@dataclass(frozen=True)
class Format:
    name: str
    read: Reader
    required: tuple[str, ...]  # columns every row must have (checked on the first row of a file)
    matches: Callable[[dict[str, Any]], bool]
    source: str | None = None  # dataset name when the format is one dataset's (else: folder / hub id)
    language: str | None = None  # the dataset's language when its rows do not say
    about: str = ""
    objective: ObjectiveRule = None  # what its labels judged (data.objectives), fixed or by subset
    labeler: str | None = None  # "human" | "llm-judge" when the dataset's labels are all one kind


def _is_hh(row: dict[str, Any]) -> bool:
    c = row.get("chosen")
    return ("prompt" not in row and "rejected" in row and isinstance(c, str)
            and c.lstrip(" ").startswith(("\n\nHuman:", "Human:")))


def _is_translated_hh(row: dict[str, Any]) -> bool:
    """A valid line of the DeepL file: {"chosen": transcript, "<translated key>": transcript}."""
    keys = [k for k in row if not k.startswith("__")]
    return (len(keys) == 2 and keys[0] == "chosen" and keys[1] != "rejected"
            and isinstance(row["chosen"], str) and "Human:" in row["chosen"])


FORMATS: dict[str, Format] = {f.name: f for f in [
    Format("hh-rlhf", readers.read_hh_rlhf, ("chosen", "rejected"), _is_hh, "hh-rlhf", "en",
           "Anthropic hh-rlhf transcripts {chosen, rejected} ('\\n\\nHuman: ...\\n\\nAssistant: ...')",
           by_subset, "human"),
    Format("ko-hh-rlhf-deepl", named.read_ko_hh_rlhf_deepl, ("chosen",),
           lambda row: ("__line__" in row and "Human:" in row["__line__"]) or _is_translated_hh(row), "ko-hh-rlhf", "ko",
           "sionic-ai Data_Ko_hh-rlhf: DeepL-translated hh-rlhf as almost-JSON lines (keys, quotes, roles damaged)",
           "harmlessness", "human"),  # a translation of harmless-base
    Format("helpsteer3", named.read_helpsteer3,
           ("context", "response1", "response2", "overall_preference"),
           lambda row: "overall_preference" in row and "response1" in row, "helpsteer3", None,
           "nvidia/HelpSteer3 preference: context, response1/2, overall_preference -3..3", "helpfulness", "human"),
    Format("arena", named.read_arena, ("conversation_a", "conversation_b", "winner"),
           lambda row: "winner" in row and "conversation_a" in row, None, None,
           "chatbot-arena / MT-Bench human judgments: conversation_a/b, winner model_a|model_b|tie|tie (bothbad), turn",
           "general", "human"),
    Format("hh-rlhf-ko", named.read_hh_rlhf_ko, ("context", "instruction", "chosen", "rejected"),
           lambda row: "instruction" in row and "context" in row and isinstance(row.get("chosen"), dict),
           "hh-rlhf-ko", "ko", "heegyu/hh-rlhf-ko: context [{from, value}], instruction, chosen/rejected {from, value}",
           by_subset, "human"),
    Format("pku-saferlhf-ko", named.read_pku_saferlhf,
           ("prompt_k", "response_0_ko", "response_1_ko", "better_response_id", "safer_response_id"),
           lambda row: "response_0_ko" in row, "pku-saferlhf-ko", "ko",
           "heegyu/PKU-SafeRLHF-ko: prompt_k, response_{0,1}_ko, better/safer_response_id", by_subset, "human"),
    Format("pku-saferlhf", named.read_pku_saferlhf,
           ("prompt", "response_0", "response_1", "better_response_id", "safer_response_id"),
           lambda row: "response_0" in row and "better_response_id" in row, "pku-saferlhf", "en",
           "PKU-Alignment/PKU-SafeRLHF: prompt, response_{0,1}, better/safer_response_id", by_subset, "human"),
    Format("square", named.read_square, ("question", "response", "acceptable?"),
           lambda row: "acceptable?" in row and "question" in row, "square", "ko",
           "naver-ai SQuARe responses: question, response, acceptable? (pairs built per question)",
           "harmlessness", "human"),
    Format("kudge", named.read_kudge, ("instruction", "chosen_response", "rejected_response"),
           lambda row: "chosen_response" in row and "rejected_response" in row, "kudge", None,
           "KUDGE challenge: instruction, chosen_response, rejected_response, subset (Korean-/English-Easy/Hard)",
           "correctness", "human"),
    Format("kudge-falseinfo", named.read_kudge_falseinfo,
           ("instruction", "original_response", "response_with_false_info"),
           lambda row: "response_with_false_info" in row, "kudge", "ko",
           "KUDGE k2-eval pairwise false-info: original_response vs the same with one false fact", "correctness", "human"),
    Format("kudge-pointwise", named.read_kudge_pointwise, ("instruction", "response", "corrupted_sequence"),
           lambda row: "corrupted_sequence" in row and "response" in row, "kudge", "ko",
           "KUDGE k2-eval pointwise false-info: ONE response per row, not a pair (rows are counted, not read)"),
    Format("preference", readers.read_preference, ("chosen", "rejected"),
           lambda row: "chosen" in row and "rejected" in row, None, None,
           "TRL preference layout / rewardsmith JSONL: [prompt,] chosen, rejected (text or messages)"),
]}


def get_format(name: str) -> Format:
    """The format called `name`; raises RewardsmithError listing close matches and all names."""
    return lookup_name(FORMATS, "format", name, cutoff=0.4,
                       fix="Leave --format out to detect it from the first row.")


def detect(row: dict[str, Any], where: str) -> Format:
    """The format of a source from its first row. Raises RewardsmithError naming the columns and the fix."""
    for fmt in FORMATS.values():
        if fmt.matches(row):
            return fmt
    if "__line__" in row:
        raise RewardsmithError(f"{where}: the line is not JSON ({row['__error__']}) and not a known text layout")
    cols = sorted(k for k in row if not k.startswith("__"))
    raise RewardsmithError(
        f"{where}: cannot tell the format from the columns {cols}. A preference row needs `chosen` and "
        "`rejected` (and usually `prompt`); map yours with columns={'prompt': 'question', 'chosen': "
        "'good', 'rejected': 'bad'} (CLI: --column prompt=question --column chosen=good ...) or name a "
        f"format (--format; known: {', '.join(FORMATS)})"
    )


def check_columns(fmt: Format, row: dict[str, Any], where: str) -> None:
    """A file whose first row lacks a required column is wrong as a whole: say which, and the fix."""
    missing = [c for c in fmt.required if c not in row]
    if not missing:
        return
    cols = sorted(k for k in row if not k.startswith("__"))
    fixes = []
    for m in missing:
        close = close_matches(m, cols, n=1)
        if close:
            fixes.append(f"{m!r}: {close[0]!r}")
    fix = ("map them with columns={" + ", ".join(fixes) + "}") if fixes else "map them with columns={...}"
    raise RewardsmithError(
        f"{where}: format {fmt.name!r} needs column(s) {missing}; the file has {cols}. {fix} "
        "(CLI: --column NEEDED=HAVE), or pick another --format"
    )
