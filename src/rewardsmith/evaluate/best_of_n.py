"""Best-of-n evaluation: does the reward model's favourite of n samples beat a random one of them?

Per prompt: n responses are sampled from a generator (sample k asked with seed k, so a re-run is
served from the cache); the reward model scores them; its best pick is judged against a pick at
random among the same n (seeded by prompt), in both orders (`rewardsmith.judge.core`).

    outcome  1    the judge prefers the reward model's pick
             0    it prefers the random pick
             0.5  a tie -- the judge says so, or (text mode) its two orders disagree -- or the
                  random pick is the best one itself (probability 1/n; nothing to judge)
    win rate = mean outcome over the prompts judged, with a 95% bootstrap interval over prompts.
             0.5 is a reward model that picks no better than chance.

This is the standard way to show a reward model helps beyond pairwise accuracy (best-of-n
sampling as in Stiennon et al. 2020, arXiv:2009.01325), and it is only as good as the judge. The
judge's position consistency -- the share of judged pairs whose two orders agree -- is reported
beside the win rate; below POSITION_CONSISTENCY_MIN the report says the judge is too weak to
decide, and the win rate is then a pipeline check, not a finding (the embedded 135M judge is).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardsmith.judge.cache import Client
    from rewardsmith.score import Scorer
    from rewardsmith.synth.responses import Sampling

# A judge that guesses agrees with itself on about half the pairs, one that follows position on
# none; below 60% its verdicts say more about the answers' order than about the answers.
POSITION_CONSISTENCY_MIN = 0.6


@dataclass(frozen=True)
class Prompt:
    id: str
    conversation: list[dict]
    language: str | None = None


@dataclass(frozen=True)
class BestOfNReport:
    """Counts are prompts. judged = wins + losses + ties; same_answer prompts count as ties in
    the win rate but were not sent to the judge."""

    prompts: int
    n: int
    win_rate: float | None
    ci_low: float | None
    ci_high: float | None
    wins: int
    losses: int
    ties: int
    same_answer: int
    judge_failures: int
    generation_failures: int
    position_consistency: float | None
    judge_mode: str
    judge_too_weak: bool
    mean_reward_best: float | None
    mean_reward_random: float | None
    conclusion: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_of_n_eval(prompts: Sequence[Prompt], scorer: "Scorer", generator: "Client", judge: "Client",
                   sampling: "Sampling", *, seed: int = 0, n_boot: int = 2000,
                   judge_max_tokens: int = 16) -> tuple[BestOfNReport, list[dict[str, Any]]]:
    """(report, one detail row per prompt). Prompts whose generation failed are left out and counted."""
    from rewardsmith import metrics
    from rewardsmith.judge.backends import Completion
    from rewardsmith.judge.core import RESPONSE_1, RESPONSE_2, judge_triples
    from rewardsmith.synth.responses import sample

    failures = Counter()
    candidates: list[tuple[Prompt, list[str]]] = []
    for prompt, results in zip(prompts, sample(generator, [p.conversation for p in prompts], sampling)):
        if all(isinstance(r, Completion) for r in results):
            candidates.append((prompt, [r.text.strip() for r in results]))
        else:
            failures["generation"] += 1
    rewards = iter(scorer.score([(p.conversation, r) for p, responses in candidates for r in responses]))
    details, to_judge = [], []
    for prompt, responses in candidates:
        scores = [next(rewards) for _ in responses]
        best = max(range(len(scores)), key=scores.__getitem__)
        pick = random.Random(f"{seed}:{prompt.id}").randrange(len(responses))
        details.append({"id": prompt.id, "prompt": prompt.conversation, "responses": responses, "rewards": scores,
                        "best": best, "random": pick, "outcome": None, "verdict": None})
        if responses[pick] == responses[best]:
            details[-1]["outcome"] = metrics.TIE
        else:
            to_judge.append((len(details) - 1, (prompt.id, prompt.conversation, responses[best], responses[pick],
                                                prompt.language)))
    verdicts = judge_triples(judge, [item for _, item in to_judge], judge_max_tokens)
    counts = Counter()
    for (row, _), verdict in zip(to_judge, verdicts):
        details[row]["verdict"] = verdict.to_dict()
        if verdict.winner is None:
            counts["failure"] += 1
            continue
        counts["parsed"] += 1
        counts["consistent"] += not verdict.flipped
        details[row]["outcome"] = {RESPONSE_1: metrics.WIN, RESPONSE_2: metrics.LOSS}.get(verdict.winner, metrics.TIE)
    outcomes = [d["outcome"] for d in details if d["outcome"] is not None]
    same = sum(1 for d in details if d["verdict"] is None)
    consistency = counts["consistent"] / counts["parsed"] if counts["parsed"] else None
    too_weak = consistency is None or consistency < POSITION_CONSISTENCY_MIN
    win_rate = low = high = None
    if outcomes:
        boots = metrics.bootstrap_means(outcomes, n_boot=n_boot, seed=seed)
        win_rate = sum(outcomes) / len(outcomes)
        low, high = metrics.interval(boots)
    judged = [d for d in details if d["outcome"] is not None]
    report = BestOfNReport(
        prompts=len(prompts), n=sampling.n, win_rate=win_rate, ci_low=low, ci_high=high,
        wins=sum(o == metrics.WIN for o in outcomes), losses=sum(o == metrics.LOSS for o in outcomes),
        ties=sum(o == metrics.TIE for o in outcomes) - same, same_answer=same, judge_failures=counts["failure"],
        generation_failures=failures["generation"], position_consistency=consistency, judge_mode=judge.mode,
        judge_too_weak=too_weak,
        mean_reward_best=_mean([d["rewards"][d["best"]] for d in judged]),
        mean_reward_random=_mean([d["rewards"][d["random"]] for d in judged]),
        conclusion=_conclusion(win_rate, low, high, consistency, too_weak, sampling.n))
    return report, details


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _conclusion(win_rate, low, high, consistency, too_weak, n) -> str:
    if win_rate is None:
        return "nothing was judged: every prompt failed to generate or to be judged"
    rate = f"best-of-{n} pick wins {win_rate:.1%} (95% interval {low:.1%}-{high:.1%}) against a random pick of the same {n}"
    if too_weak:
        agree = "no pair was judged in both orders" if consistency is None else \
            f"its two orders agree on only {consistency:.0%} of the pairs"
        return (f"{rate}, but the judge is too weak to decide: {agree} (below {POSITION_CONSISTENCY_MIN:.0%}); "
                "read this as a pipeline check, not as evidence about the reward model")
    if low > 0.5:
        return f"{rate}: the reward model picks better answers than chance"
    if high < 0.5:
        return f"{rate}: the reward model picks worse answers than chance"
    return f"{rate}: not distinguishable from chance at this number of prompts"
