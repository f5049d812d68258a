"""Stage 3: pairing — which responses to one instruction the judge compares.

Every two responses with different text make a candidate (identical answers cannot be ranked);
`max_per_instruction` keeps a deterministic random subset (seeded by the instruction id) so a
run with many samples does not grow quadratically.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rewardsmith.synth.responses import Response


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    instruction_id: str
    response_ids: tuple[str, str]

    def to_dict(self) -> dict:
        return asdict(self)


def make_candidates(responses: Sequence[Response], max_per_instruction: int | None = None) -> tuple[list[Candidate], int]:
    """(candidates, identical responses dropped) in instruction order."""
    by_instruction: dict[str, list[Response]] = {}
    for r in responses:
        by_instruction.setdefault(r.instruction_id, []).append(r)
    out, identical = [], 0
    for ins_id, group in by_instruction.items():
        unique, seen = [], set()
        for r in group:
            if r.response in seen:
                identical += 1
                continue
            seen.add(r.response)
            unique.append(r)
        combos = list(itertools.combinations(unique, 2))
        if max_per_instruction is not None and len(combos) > max_per_instruction:
            combos = sorted(random.Random(ins_id).sample(range(len(combos)), max_per_instruction))
            combos = [list(itertools.combinations(unique, 2))[i] for i in combos]
        out += [Candidate(f"{a.id}|{b.id}", ins_id, (a.id, b.id)) for a, b in combos]
    return out, identical
