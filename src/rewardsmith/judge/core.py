"""Pairwise judging: prompts in, one `Verdict` per pair out, every pair judged in both orders.

Order 1 shows response_1 as answer A and response_2 as B; order 2 swaps them. Two ways to read
the judge (`mode`, a backend setting: `local:NAME?mode=text`, `openai:M@URL?mode=logprobs`):

text      the reply is generated and parsed to A, B, tie ([[C]]), or a counted failure.
          Each order's outcome is mapped back to the responses; the orders agree -> that
          winner, they disagree (a "flip") -> tie: a bare letter carries no strength, so a
          disagreement cannot be resolved, and the preference followed the position.
logprobs  the reply is begun for the judge ("Verdict: [[") and the next-token probabilities of
          A, B and C are read, normalised over the three. A distribution is decided by `_decide`:
          tie when P(tie) > 1/2 (the tie token outweighs both picks), else the likelier answer.
          Per order that gives the order's outcome (so flips and first-position picks are
          counted exactly as in text mode). The pair's verdict decides the two orders'
          probabilities averaged per response (P(response_1) = (P1(A) + P2(B)) / 2, ...,
          symmetric: swapping the responses swaps the result): the "balanced position calibration" of
          Wang et al. 2023 (arXiv:2305.17926). Averaging is what removes the position bias --
          a judge that always leans to A by the same amount still ranks the responses by how
          much more it likes one than the other -- so a flip is NOT turned into a tie here (with
          a strongly position-biased small judge nearly every pair flips, and the disagreement
          rule would leave nothing decided). The flip stays recorded (`flipped`, the report's
          flip rate), and a tie is a pair where the tie token wins the averaged distribution.
          A counted failure only when none of A/B/C is among the tokens the backend returns
          (the full distribution locally; the top-k on a server).
Either way a failed order makes the pair a failure (`failure` says why); never a guessed default.

For human-labelled pairs `response_1` is the human's chosen answer, so `winner == "response_1"`
is agreement with the human.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rewardsmith import metrics
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
    text = unicodedata.normalize("NFKC", text)  # full-width "［［Ａ］］" from a Japanese judge is [[A]]
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
              In logprob mode each order's outcome is that order's distribution decided alone.
    flipped:  both orders parsed and disagree (position bias at work); in text mode the winner
              is then "tie", in logprob mode the averaged probabilities decide (module docstring).
    raw:      the judge's two replies verbatim (None where the request itself failed); in logprob
              mode the token the judge would have written next.
    mode:     "text" or "logprobs".
    probs:    logprob mode: {"order_1": {"A", "B", "C"}, "order_2": {...}} normalised over the
              three (None for a failed order) and "combined": {"response_1", "response_2", "tie"}.
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
    mode: str = "text"
    probs: dict[str, Any] | None = None

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
                   max_tokens: int, mode: str = "text") -> tuple[Request, Request]:
    """The two requests for one pair: (response_1 as A, response_2 as A). Unknown languages use English."""
    lang = language if language in prompts.LANGUAGES else "en"
    question = render_question(prompt)
    logprobs = {"choices": prompts.CHOICES, "prefix": prompts.VERDICT_PREFIX[lang]} if mode == "logprobs" else {}

    def one(a: str, b: str) -> Request:
        user = prompts.PAIRWISE[lang].format(question=question, answer_a=a, answer_b=b)
        return Request.chat([{"role": "user", "content": user}], max_tokens=max_tokens, temperature=0.0, **logprobs)

    return one(response_1, response_2), one(response_2, response_1)


def _decide(first: float, second: float, tie: float) -> str:
    """"first" | "second" | "tie" from three probabilities summing to 1.

    The tie token wins when it outweighs the two picks together (P(tie) > 1/2); otherwise the
    likelier of the two answers wins, and an exact draw between them is a tie. Not a plain
    3-way argmax: averaged over orders, a position-biased judge's mass on "A" is split between
    the two responses, so a plain argmax would hand the tie token every pair the judge leans
    on by position (measured on SmolLM2: P(A) ~0.45, P(B) ~0.1, P(C) ~0.45 in both orders).
    """
    if tie > first + second:
        return "tie"
    return "first" if first > second else "second" if second > first else "tie"


def _read_probs(completion: Completion) -> dict[str, float] | ParseFailure:
    """{"A", "B", "C"} normalised over the three, or why they cannot be read."""
    if completion.probs is None:
        return ParseFailure("no probabilities: the backend answered with text only")
    mass = {c: float(completion.probs.get(c, 0.0)) for c in prompts.CHOICES}
    total = sum(mass.values())
    if not total > 0:
        return ParseFailure(f"no verdict token: none of {', '.join(prompts.CHOICES)} among the returned tokens")
    return {c: p / total for c, p in mass.items()}


def _to_responses(letter: str, n: int) -> str:
    """A letter of order n mapped to the response it showed: in order 1 A is response_1, in order 2 B is."""
    if letter in (TIE, "C"):
        return TIE
    return RESPONSE_1 if (letter == "A") == (n == 1) else RESPONSE_2


def _combine(pair_id: str, judge: str, language: str, results: Sequence, mode: str = "text") -> Verdict:
    orders: list[str | None] = []
    raws: list[str | None] = []
    read: list[dict[str, float] | None] = []
    failures: list[str] = []
    tokens = 0
    for n, result in enumerate(results, start=1):
        read.append(None)
        if not isinstance(result, Completion):
            orders.append(None)
            raws.append(None)
            failures.append(f"order {n}: request failed: {result.reason}")
            continue
        raws.append(result.text)
        tokens += result.prompt_tokens + result.completion_tokens
        parsed = _read_probs(result) if mode == "logprobs" else parse_verdict(result.text)
        if isinstance(parsed, ParseFailure):
            orders.append(None)
            failures.append(f"order {n}: {parsed.reason}")
        elif isinstance(parsed, dict):
            read[-1] = parsed
            orders.append(_to_responses({"first": "A", "second": "B", "tie": "C"}[
                _decide(parsed["A"], parsed["B"], parsed["C"])], n))
        else:
            orders.append(_to_responses(parsed, n))
    probs = None
    if mode == "logprobs":
        probs = {f"order_{n}": None if p is None else {k: round(v, 6) for k, v in p.items()}
                 for n, p in enumerate(read, start=1)}
    if failures:
        winner, flipped = None, False
    else:
        flipped = orders[0] != orders[1]
        if mode == "logprobs":
            p1, p2 = read
            combined = {RESPONSE_1: (p1["A"] + p2["B"]) / 2, RESPONSE_2: (p1["B"] + p2["A"]) / 2,
                        TIE: (p1["C"] + p2["C"]) / 2}
            winner = {"first": RESPONSE_1, "second": RESPONSE_2, "tie": TIE}[
                _decide(combined[RESPONSE_1], combined[RESPONSE_2], combined[TIE])]
            probs["combined"] = {k: round(v, 6) for k, v in combined.items()}
        else:
            winner = TIE if flipped else orders[0]
    return Verdict(pair_id, judge, language, winner, (orders[0], orders[1]), flipped,
                   "; ".join(failures) or None, (raws[0], raws[1]), tokens, mode, probs)


def judge_triples(client: Client, items: Sequence[tuple[str, Sequence[Message], str, str, str | None]],
                  max_tokens: int = 16, mode: str | None = None) -> list[Verdict]:
    """Judge (id, prompt, response_1, response_2, language) items in both orders; one Verdict each.

    `mode` ("text" | "logprobs") defaults to the backend's setting (`client.mode`)."""
    mode = mode or client.mode
    requests: list[Request] = []
    for _, prompt, r1, r2, lang in items:
        requests.extend(judge_requests(prompt, r1, r2, lang, max_tokens, mode))
    results = client.run(requests)
    return [_combine(item[0], client.model_id, item[4] or "", results[2 * k: 2 * k + 2], mode)
            for k, item in enumerate(items)]


def judge_pairs(judge: Client, pairs: Sequence[PreferencePair], max_tokens: int = 16,
                mode: str | None = None) -> list[Verdict]:
    """Judge human-labelled pairs (chosen = response_1); `winner == "response_1"` agrees with the human.

    Pairs whose answers reply to different conversations (`rejected_prompt` set) cannot be shown
    side by side and are left out; callers count them (`len(pairs) - len(result)`).
    """
    items = [(p.id, p.prompt, p.chosen, p.rejected, p.language) for p in pairs if p.rejected_prompt is None]
    return judge_triples(judge, items, max_tokens, mode)


@dataclass
class JudgeSummary:
    """Agreement of a judge with human labels, and its position bias.

    accuracy:         wins / pairs with its 95% bootstrap interval (ci_low, ci_high), computed by
                      `rewardsmith.metrics.accuracy` -- the evaluation table's convention:
                      a tie is not a win, and a failed pair is not a win either (never a guessed
                      default), so a judge's cell compares with a reward model's on the same n.
                      `ties` says how many pairs got no side.
    decided_accuracy: agree / (agree + disagree), over pairs where the judge picked a side.
    ties:             explicit_ties (the tie verdict won) + flip_ties (text mode: the orders disagreed).
    flips:            pairs whose two orders both parsed and gave different outcomes (per-order
                      outcome in logprob mode, where a flip is decided by the averaged probabilities).
    flip_rate:        flips / pairs where both orders parsed: how often the order changed the verdict.
    first_position_rate: share of per-order outcomes that picked a side and picked answer A
                      (0.5 = no position bias).
    first_position_prob: logprob mode: mean P(A) / (P(A) + P(B)) over the orders read -- the same
                      bias in probability, visible even when no outcome changes.
    failure_reasons:  counted per failed reply (a pair has two), e.g. {"no verdict": 3, "request failed": 1}.
    """

    mode: str = "text"
    pairs: int = 0
    agree: int = 0
    disagree: int = 0
    ties: int = 0
    explicit_ties: int = 0
    flip_ties: int = 0
    flips: int = 0
    failures: int = 0
    skipped: int = 0
    accuracy: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    decided_accuracy: float | None = None
    flip_rate: float | None = None
    first_position_rate: float | None = None
    first_position_prob: float | None = None
    failure_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(verdicts: Sequence[Verdict], skipped: int = 0,
              prompts: Mapping[str, str] | None = None) -> JudgeSummary:
    """The judge's agreement and bias over `verdicts`. prompts: pair id -> prompt key
    (PreferencePair.prompt_key); given, the accuracy interval resamples whole prompts, as the
    evaluation table's does (pairs of one prompt are not independent draws)."""
    modes = {v.mode for v in verdicts}
    s = JudgeSummary(mode="/".join(sorted(modes)) if modes else "text", pairs=len(verdicts), skipped=skipped)
    first = decided = 0
    position_probs: list[float] = []
    outcomes: list[float] = []
    for v in verdicts:
        outcomes.append({RESPONSE_1: metrics.WIN, TIE: metrics.TIE}.get(v.winner, metrics.LOSS))
        if v.winner is None:
            s.failures += 1
            for part in (v.failure or "").split("; "):
                reason = part.split(": ", 1)[-1].split(":")[0]
                s.failure_reasons[reason] = s.failure_reasons.get(reason, 0) + 1
        else:
            s.flips += v.flipped
            if v.winner == RESPONSE_1:
                s.agree += 1
            elif v.winner == RESPONSE_2:
                s.disagree += 1
            else:
                s.ties += 1
                made_by_flip = v.flipped and v.mode == "text"
                s.flip_ties += made_by_flip
                s.explicit_ties += not made_by_flip
        for n, outcome in enumerate(v.orders, start=1):
            if outcome in (RESPONSE_1, RESPONSE_2):
                decided += 1
                first += (outcome == RESPONSE_1) == (n == 1)
        for p in (v.probs or {}).values():
            if p and "A" in p and p["A"] + p["B"] > 0:
                position_probs.append(p["A"] / (p["A"] + p["B"]))
    parsed_both = s.pairs - s.failures
    if outcomes:
        clusters = [prompts.get(v.pair_id, v.pair_id) for v in verdicts] if prompts else None
        cell, _ = metrics.accuracy(outcomes, clusters=clusters)
        s.accuracy, s.ci_low, s.ci_high = cell.accuracy, cell.low, cell.high
    s.decided_accuracy = s.agree / (s.agree + s.disagree) if s.agree + s.disagree else None
    s.flip_rate = s.flips / parsed_both if parsed_both else None
    s.first_position_rate = first / decided if decided else None
    s.first_position_prob = sum(position_probs) / len(position_probs) if position_probs else None
    return s
