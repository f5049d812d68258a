"""Pairwise judging: prompts in, one `Verdict` per pair out, every pair judged in both orders.

Order 1 shows response_1 as answer A and response_2 as B; order 2 swaps them. Each reply is
parsed to A, B, tie, or a counted failure, then mapped back to the responses:

    order 1 says A  -> response_1       order 2 says A  -> response_2
    both orders agree          -> that winner
    they disagree (a "flip")   -> tie: the judge's preference followed the position, not the answer
    either reply unparseable   -> no winner (`failure` says why); never a guessed default

For human-labelled pairs `response_1` is the human's chosen answer, so `winner == "response_1"`
is agreement with the human.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rewardsmith.data.record import Message, PreferencePair
from rewardsmith.judge import prompts
from rewardsmith.judge.backends import Completion, Request
from rewardsmith.judge.cache import Client

RESPONSE_1, RESPONSE_2, TIE = "response_1", "response_2", "tie"
_TOKEN = re.compile(r"\[\[\s*([ABC])\s*\]\]", re.IGNORECASE)
# Without tokens, a reply that starts with a lone letter: "A", "**B**", "Verdict: C", "A: ...", "C) ...".
_BARE = re.compile(r"^\W*(?:verdict\W*)?([ABC])(?:\W*$|[):.\]])", re.IGNORECASE)
_LETTER = {"A": "A", "B": "B", "C": TIE}


@dataclass(frozen=True, slots=True)
class ParseFailure:
    reason: str


def parse_verdict(text: str) -> str | ParseFailure:
    """'A', 'B' or 'tie' from a judge reply, or a ParseFailure saying why not.

    Every `[[X]]` token in the reply must agree (a reply quoting the instructions, "[[A]], [[B]]
    or [[C]]", is ambiguous, not an A). Without tokens, a reply starting with a lone letter label
    ("A", "B:", "C)") counts; "A good answer..." does not.
    """
    letters = {m.upper() for m in _TOKEN.findall(text)}
    if len(letters) > 1:
        return ParseFailure(f"ambiguous: several verdicts {sorted(letters)}")
    if letters:
        return _LETTER[letters.pop()]
    first = next((line for line in text.splitlines() if line.strip()), "")
    bare = _BARE.match(first)
    if bare:
        return _LETTER[bare.group(1).upper()]
    return ParseFailure("no verdict: none of [[A]], [[B]], [[C]] found" if text.strip() else "empty reply")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judge's decision on one pair, with everything needed to audit it.

    winner:   "response_1" | "response_2" | "tie" | None (None: a reply failed; see `failure`).
    orders:   per-order outcome mapped to responses, e.g. ("response_1", "tie"); None = failed.
    flipped:  both orders parsed and disagree (position bias at work); the winner is then "tie".
    raw:      the judge's two replies verbatim (None where the request itself failed).
    """

    pair_id: str
    judge: str
    language: str
    winner: str | None
    orders: tuple[str | None, str | None]
    flipped: bool
    failure: str | None
    raw: tuple[str | None, str | None]
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def render_question(prompt: Sequence[Message]) -> str:
    """The conversation as the judge reads it: the bare question for one turn, a transcript otherwise."""
    turns = [m for m in prompt if m["role"] != "system"]
    if len(turns) == 1:
        return turns[0]["content"]
    names = {"user": "User", "assistant": "Assistant"}
    return "\n\n".join(f"{names.get(m['role'], m['role'])}: {m['content']}" for m in turns)


def judge_requests(prompt: Sequence[Message], response_1: str, response_2: str, language: str | None,
                   max_tokens: int) -> tuple[Request, Request]:
    """The two requests for one pair: (response_1 as A, response_2 as A). Unknown languages use English."""
    lang = language if language in prompts.LANGUAGES else "en"
    question = render_question(prompt)

    def one(a: str, b: str) -> Request:
        user = prompts.PAIRWISE[lang].format(question=question, answer_a=a, answer_b=b)
        return Request.chat([{"role": "user", "content": user}], max_tokens=max_tokens, temperature=0.0)

    return one(response_1, response_2), one(response_2, response_1)


def _combine(pair_id: str, judge: str, language: str, results: Sequence) -> Verdict:
    orders: list[str | None] = []
    raws: list[str | None] = []
    failures: list[str] = []
    tokens = 0
    for n, result in enumerate(results, start=1):
        if not isinstance(result, Completion):
            orders.append(None)
            raws.append(None)
            failures.append(f"order {n}: request failed: {result.reason}")
            continue
        raws.append(result.text)
        tokens += result.prompt_tokens + result.completion_tokens
        parsed = parse_verdict(result.text)
        if isinstance(parsed, ParseFailure):
            orders.append(None)
            failures.append(f"order {n}: {parsed.reason}")
        elif parsed == TIE:
            orders.append(TIE)
        else:  # in order 1 A is response_1; in order 2 A is response_2
            orders.append(RESPONSE_1 if (parsed == "A") == (n == 1) else RESPONSE_2)
    if failures:
        winner, flipped = None, False
    else:
        flipped = orders[0] != orders[1]
        winner = TIE if flipped else orders[0]
    return Verdict(pair_id, judge, language, winner, (orders[0], orders[1]), flipped,
                   "; ".join(failures) or None, (raws[0], raws[1]), tokens)


def judge_triples(client: Client, items: Sequence[tuple[str, Sequence[Message], str, str, str | None]],
                  max_tokens: int = 16) -> list[Verdict]:
    """Judge (id, prompt, response_1, response_2, language) items in both orders; one Verdict each."""
    requests: list[Request] = []
    for _, prompt, r1, r2, lang in items:
        requests.extend(judge_requests(prompt, r1, r2, lang, max_tokens))
    results = client.run(requests)
    return [_combine(item[0], client.model_id, item[4] or "", results[2 * k: 2 * k + 2])
            for k, item in enumerate(items)]


def judge_pairs(judge: Client, pairs: Sequence[PreferencePair], max_tokens: int = 16) -> list[Verdict]:
    """Judge human-labelled pairs (chosen = response_1); `winner == "response_1"` agrees with the human.

    Pairs whose answers reply to different conversations (`rejected_prompt` set) cannot be shown
    side by side and are left out; callers count them (`len(pairs) - len(result)`).
    """
    items = [(p.id, p.prompt, p.chosen, p.rejected, p.language) for p in pairs if p.rejected_prompt is None]
    return judge_triples(judge, items, max_tokens)


@dataclass
class JudgeSummary:
    """Agreement of a judge with human labels, and its position bias.

    accuracy:         (agree + 0.5 * tie) / pairs; a failed pair counts 0 (never a guessed default),
                      so it is comparable with a reward model's accuracy where equal scores score 0.5.
    decided_accuracy: agree / (agree + disagree), over pairs where the judge picked a side.
    flip_rate:        flips / pairs where both orders parsed: how often the order changed the verdict.
    first_position_rate: share of parsed non-tie replies choosing answer A (0.5 = no position bias).
    failure_reasons:  counted per failed reply (a pair has two), e.g. {"no verdict": 3, "request failed": 1}.
    """

    pairs: int = 0
    agree: int = 0
    disagree: int = 0
    ties: int = 0
    explicit_ties: int = 0
    flips: int = 0
    failures: int = 0
    skipped: int = 0
    accuracy: float = 0.0
    decided_accuracy: float | None = None
    flip_rate: float | None = None
    first_position_rate: float | None = None
    failure_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(verdicts: Sequence[Verdict], skipped: int = 0) -> JudgeSummary:
    s = JudgeSummary(pairs=len(verdicts), skipped=skipped)
    first = decided = 0
    for v in verdicts:
        if v.winner is None:
            s.failures += 1
            for part in (v.failure or "").split("; "):
                reason = part.split(": ", 1)[-1].split(":")[0]
                s.failure_reasons[reason] = s.failure_reasons.get(reason, 0) + 1
        elif v.winner == RESPONSE_1:
            s.agree += 1
        elif v.winner == RESPONSE_2:
            s.disagree += 1
        else:
            s.ties += 1
            s.flips += v.flipped
            s.explicit_ties += not v.flipped
        for n, outcome in enumerate(v.orders, start=1):
            if outcome in (RESPONSE_1, RESPONSE_2):
                decided += 1
                first += (outcome == RESPONSE_1) == (n == 1)
    parsed_both = s.pairs - s.failures
    s.accuracy = (s.agree + 0.5 * s.ties) / s.pairs if s.pairs else 0.0
    s.decided_accuracy = s.agree / (s.agree + s.disagree) if s.agree + s.disagree else None
    s.flip_rate = s.flips / parsed_both if parsed_both else None
    s.first_position_rate = first / decided if decided else None
    return s
