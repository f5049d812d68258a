"""Stage 2: responses — N samples per instruction from each generator, sampling settings recorded.

Sample k of an instruction from a generator is the request (instruction, temperature, top_p,
max_tokens, seed=k): the same run asks the same requests, so a re-run is served from the cache,
and raising N later only asks for the new samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from rewardsmith.judge.backends import Completion, Request, RequestFailure
from rewardsmith.judge.cache import Client
from rewardsmith.synth.instructions import Instruction


@dataclass(frozen=True, slots=True)
class Sampling:
    n: int = 2
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 256


@dataclass(frozen=True, slots=True)
class Response:
    id: str
    instruction_id: str
    language: str
    generator: str
    sample: int
    sampling: dict
    response: str
    tokens: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ResponseReport:
    requested: int = 0
    kept: int = 0
    failed: int = 0
    empty: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)


def sample(client: Client, conversations: Sequence[Sequence[dict]],
           sampling: Sampling) -> list[list[Completion | RequestFailure]]:
    """`sampling.n` results per conversation, in order; sample k is asked with seed k (so a re-run,
    or a larger n later, is answered from the cache)."""
    requests = [Request.chat(conversation, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                             top_p=sampling.top_p, seed=k)
                for conversation in conversations for k in range(sampling.n)]
    results = client.run(requests)
    return [results[i * sampling.n:(i + 1) * sampling.n] for i in range(len(conversations))]


def generate(clients: Sequence[Client], instructions: Sequence[Instruction],
             sampling: Sampling) -> tuple[list[Response], ResponseReport]:
    """`sampling.n` responses per instruction per generator, in instruction order."""
    report = ResponseReport()
    reasons: Counter = Counter()
    settings = asdict(sampling)
    out: list[Response] = []
    for g, client in enumerate(clients):
        samples = sample(client, [[{"role": "user", "content": ins.instruction}] for ins in instructions], sampling)
        for j, result in enumerate(r for per_instruction in samples for r in per_instruction):
            ins, k = instructions[j // sampling.n], j % sampling.n
            report.requested += 1
            if not isinstance(result, Completion):
                report.failed += 1
                reasons[result.reason.split(":")[0]] += 1
            elif not result.text.strip():
                report.empty += 1
            else:
                report.kept += 1
                out.append(Response(f"{ins.id}#g{g}s{k}", ins.id, ins.language, client.model_id, k, settings,
                                    result.text.strip(), result.completion_tokens))
    order = {ins.id: i for i, ins in enumerate(instructions)}
    out.sort(key=lambda r: (order[r.instruction_id], r.id))
    report.failure_reasons = dict(reasons)
    return out, report
