"""In-process generation with transformers on a local model (an embedded name, a folder or a hub id).

`local:smollm2-135m-instruct` or `local:gemma-3-270m` go through
`rewardsmith.models.embedded.prepare(name)` (the packaged weights, converted once into an
ordinary folder); anything with a `/` is a folder or a hub id, and loads the same way.
Greedy requests are batched (left padding, sorted by length so a batch pads little); sampled
requests run one by one under their own seed, so sample k of a prompt is reproducible and a
cached sample never depends on which other requests shared its batch.
Threads: torch's default (all cores). On a crowded machine OMP_NUM_THREADS=1 is far faster:
decoding is thousands of tiny ops, each a thread barrier (docs/benchmarks.md).
A model without a chat template (gemma-3-270m is a base model) gets a plain
"User: ... / Assistant:" transcript instead; the result is recorded under the same model id.

Logprob requests (`Request.choices`, the judge's default here: `mode="logprobs"`) need no
decoding: one forward pass over the prompt plus the assistant's first words (`Request.prefix`,
e.g. "Verdict: [["), and the next-token distribution is read for each choice. A choice's
probability is the sum over the tokens that spell it ("A" and " A" are different tokens), from
the full softmax, so every choice always has a value. Batched with left padding and explicit
position ids, so a prompt's probabilities do not depend on its batch (tested).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from rewardsmith.errors import RewardsmithError
from rewardsmith.judge.backends import Completion, Request, RequestFailure, check_mode

_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


def _resolve(name: str) -> str:
    if Path(name).is_dir():
        return name
    if "/" not in name:  # an embedded model name, e.g. smollm2-135m-instruct
        from rewardsmith.models.embedded import prepare

        return str(prepare(name))
    return name  # a hub id: from_pretrained fetches it when the hub is reachable


class LocalBackend:
    def __init__(self, name: str, *, batch_size: int = 8, mode: str = "logprobs", **_):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id = f"local:{name}"
        self.mode = check_mode(mode, f"local:{name}")
        path = _resolve(name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except OSError as e:
            raise RewardsmithError(f"local backend: cannot load {name!r} from {path}: {e}") from e
        self.model.eval()
        self.tokenizer.padding_side = "left"  # generation continues from the last real token
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # fp32, not bf16 autocast: autocast wins on big forward passes but its per-op casts cost
        # more than they save in token-by-token decoding of a small model (docs/benchmarks.md).
        self.batch_size = batch_size
        self._choice_ids: dict[tuple[str, ...], list[list[int]]] = {}

    def _prompt(self, request: Request) -> str:
        messages = request.message_dicts()
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        lines = [f"{_ROLE_NAMES.get(m['role'], m['role'])}: {m['content']}" for m in messages]
        return "\n\n".join(lines) + "\n\nAssistant:"

    def _generate(self, requests: Sequence[Request]) -> list[Completion]:
        import torch

        prompts = [self._prompt(r) for r in requests]
        # A chat template writes its own special tokens; a plain transcript needs the tokenizer's
        # BOS (gemma degenerates into repeating "Assistant:" without it).
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True,
                               add_special_tokens=not self.tokenizer.chat_template)
        first = requests[0]
        sampling = first.temperature > 0
        if sampling:
            torch.manual_seed(first.seed or 0)
        kwargs = dict(max_new_tokens=first.max_tokens, do_sample=sampling,
                      pad_token_id=self.tokenizer.pad_token_id)
        if sampling:
            kwargs.update(temperature=first.temperature, top_p=first.top_p)
        with torch.inference_mode():
            out = self.model.generate(**batch, **kwargs)
        width = batch["input_ids"].shape[1]
        results = []
        for row, mask in zip(out, batch["attention_mask"]):
            new = row[width:].tolist()
            eos = self.tokenizer.eos_token_id
            stops = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.pad_token_id}
            n = next((i for i, t in enumerate(new) if t in stops), len(new))
            text = self.tokenizer.decode(new[:n], skip_special_tokens=True)
            if not self.tokenizer.chat_template:  # a base model goes on to write the next turn itself
                text = text.split("\n\nUser:")[0]
            results.append(Completion(text.strip(), prompt_tokens=int(mask.sum()), completion_tokens=n))
        return results

    def _token_ids(self, choices: tuple[str, ...]) -> list[list[int]]:
        """Per choice, the single tokens that spell it, with or without a leading space."""
        if choices not in self._choice_ids:
            ids = []
            for choice in choices:
                found = set()
                for variant in (choice, " " + choice):
                    tokens = self.tokenizer.encode(variant, add_special_tokens=False)
                    if len(tokens) == 1:
                        found.add(tokens[0])
                if not found:
                    raise RewardsmithError(f"{self.model_id}: choice {choice!r} is not one token in this "
                                           "tokenizer, so its probability cannot be read; use ?mode=text")
                ids.append(sorted(found))
            self._choice_ids[choices] = ids
        return self._choice_ids[choices]

    def _choice_probs(self, requests: Sequence[Request]) -> list[Completion]:
        import torch

        prompts = [self._prompt(r) + r.prefix for r in requests]
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True,
                               add_special_tokens=not self.tokenizer.chat_template)
        mask = batch["attention_mask"]
        # Left padding shifts where each row starts; positions must count from its first real token.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(**batch, position_ids=positions, logits_to_keep=1).logits[:, -1, :]
        probs = torch.softmax(logits.float(), dim=-1)
        ids = self._token_ids(requests[0].choices)
        results = []
        for row, n in zip(probs, mask.sum(-1).tolist()):
            mass = {c: float(row[t].sum()) for c, t in zip(requests[0].choices, ids)}
            top = self.tokenizer.decode([int(row.argmax())])  # what greedy decoding would write next
            results.append(Completion(top, prompt_tokens=n, completion_tokens=0, probs=mass))
        return results

    def complete(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion | RequestFailure]]:
        scored = sorted((i for i, r in enumerate(requests) if r.choices), key=lambda i: len(self._prompt(requests[i])))
        groups: list[list[int]] = []
        for i in scored:  # batches share their choices, so one forward pass serves them all
            if groups and len(groups[-1]) < self.batch_size and requests[groups[-1][0]].choices == requests[i].choices:
                groups[-1].append(i)
            else:
                groups.append([i])
        yield from self._run(requests, groups, self._choice_probs)
        greedy = sorted((i for i, r in enumerate(requests) if r.temperature == 0 and not r.choices),
                        key=lambda i: (requests[i].max_tokens, len(self._prompt(requests[i]))))
        groups = []
        for i in greedy:  # batches share max_tokens, so one generate() call serves them all
            if groups and len(groups[-1]) < self.batch_size and requests[groups[-1][0]].max_tokens == requests[i].max_tokens:
                groups[-1].append(i)
            else:
                groups.append([i])
        groups += [[i] for i, r in enumerate(requests) if r.temperature > 0 and not r.choices]
        yield from self._run(requests, groups, self._generate)

    @staticmethod
    def _run(requests, groups, step) -> Iterator[tuple[int, Completion | RequestFailure]]:
        for group in groups:
            try:
                completions = step([requests[i] for i in group])
            except (RuntimeError, ValueError) as e:  # e.g. a prompt longer than the model allows
                for i in group:
                    yield i, RequestFailure(f"{type(e).__name__}: {str(e)[:300]}")
                continue
            for i, completion in zip(group, completions):
                yield i, completion


def from_spec(rest: str, **options) -> LocalBackend:
    return LocalBackend(rest, **{k: v for k, v in options.items() if k in ("batch_size", "mode")})
