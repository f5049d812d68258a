"""Stage 4: judging — each candidate judged in both orders, decided ones become PreferencePairs.

A tie (text mode: an explicit tie or a flip; logprob mode: the tie token wins the averaged
probabilities, see `rewardsmith.judge.core`) is counted, kept in verdicts.jsonl, and left out of
the training pairs unless `keep_ties` (then margin 0.0 marks it). A failed verdict is counted
and never turned into a pair. Each pair's label_info carries the judge and its mode, both raw
replies, the per-order outcomes, whether the order flipped them, the probabilities (logprob
mode), the generators and their sampling settings -- enough to filter later, e.g. to drop
flipped pairs or keep only confident ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewardsmith.data.record import PreferencePair
from rewardsmith.judge.cache import Client
from rewardsmith.judge.core import RESPONSE_1, TIE, Verdict, judge_triples
from rewardsmith.synth.instructions import Instruction
from rewardsmith.synth.pairing import Candidate
from rewardsmith.synth.responses import Response

SOURCE = "rewardsmith-synth"


def judge_candidates(client: Client, candidates: Sequence[Candidate], instructions: dict[str, Instruction],
                     responses: dict[str, Response], *, keep_ties: bool = False,
                     max_tokens: int = 16) -> tuple[list[PreferencePair], list[Verdict]]:
    """(pairs for training, every verdict), both in candidate order."""
    items = []
    for c in candidates:
        ins = instructions[c.instruction_id]
        r1, r2 = (responses[i] for i in c.response_ids)
        items.append((c.id, [{"role": "user", "content": ins.instruction}], r1.response, r2.response, ins.language))
    verdicts = judge_triples(client, items, max_tokens)
    pairs = []
    for c, v, item in zip(candidates, verdicts, items):
        if v.winner is None or (v.winner == TIE and not keep_ties):
            continue
        r1, r2 = (responses[i] for i in c.response_ids)
        chosen, rejected = (r1, r2) if v.winner in (RESPONSE_1, TIE) else (r2, r1)
        pairs.append(PreferencePair(
            id=c.id, prompt=item[1], chosen=chosen.response, rejected=rejected.response,
            margin=0.0 if v.winner == TIE else None, language=item[4], source=SOURCE, subset=client.model_id,
            # judge.prompts asks which answer is "more helpful, correct, honest and harmless": overall quality.
            objective="general", labeler="llm-judge",
            label_info={
                "judge": client.model_id, "mode": v.mode, "verdict": v.winner, "orders": list(v.orders),
                "flipped": v.flipped, "probs": v.probs, "raw": list(v.raw), "chosen_id": chosen.id, "rejected_id": rejected.id,
                "generators": [chosen.generator, rejected.generator], "sampling": chosen.sampling,
                "instruction_source": instructions[c.instruction_id].source,
            },
        ))
    return pairs, verdicts
