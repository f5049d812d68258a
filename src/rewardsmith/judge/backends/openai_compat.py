"""Any OpenAI-compatible chat server through the official `openai` client.

Bounded concurrency (a thread pool of `concurrency` workers), a per-request timeout, and the
client's own limited retries (`max_retries`, exponential back-off on 429/5xx/connection errors).
A 200 whose body is no chat completion (empty, not JSON, cut short, not UTF-8: a proxy or a
crashed server) is retried the same bounded number of times with the same back-off. A request
still failing after that becomes a `RequestFailure`, counted by the caller and not cached, so the
next run sends it again; nothing here retries forever. `max_tokens` is sent as such (llama.cpp,
vLLM and Ollama read it).
The API key comes from $OPENAI_API_KEY; local servers ignore it, so a placeholder is used.

Logprob requests (`Request.choices`; `mode="logprobs"` in the spec, `openai:M@URL?mode=logprobs`)
send `logprobs=true, top_logprobs=20` (the OpenAI API's maximum; llama.cpp's server and vLLM
accept it). A chat server cannot be made to continue a half-written assistant turn portably, so
the reply is generated as usual and read where the verdict stands: the position right after
the generated text reaches the prefix's last word ("[[" of "Verdict: [["), or the first
position when the reply never writes it. A choice's probability sums the top-k tokens that spell
it (" A" and "A"); choices outside the top-k are absent, none present is a counted failure.
Text mode (the default here) suits hosted APIs that return no logprobs.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from rewardsmith.errors import RewardsmithError
from rewardsmith.judge.backends import Completion, Request, RequestFailure, check_mode

TOP_LOGPROBS = 20
RETRY_DELAY = 0.5  # seconds before the first retry of an unreadable reply, doubled each time (as the client's)


def choice_probs(tokens: Sequence[tuple[str, Sequence[tuple[str, float]]]], choices: Sequence[str],
                 prefix: str) -> dict[str, float]:
    """Probabilities of `choices` at the verdict position of a generated reply.

    tokens: per generated token, (its text, [(top-k token text, logprob), ...]). The verdict
    position follows the first point where the text so far ends with the prefix's last word;
    without that word in the reply, it is the first token (a bare "A" reply).
    """
    marker = prefix.split()[-1] if prefix.strip() else ""
    position, text = None, ""
    for i, (token, _) in enumerate(tokens):
        if marker and text.rstrip().endswith(marker):
            position = i
            break
        text += token
    if position is None:
        if marker and text.rstrip().endswith(marker):
            return {}  # the reply was cut off right before its verdict
        position = 0
    probs: dict[str, float] = {}
    for token, logprob in tokens[position][1] if tokens else ():
        key = token.strip()
        if key in choices:
            probs[key] = probs.get(key, 0.0) + math.exp(logprob)
    return probs


class OpenAIBackend:
    def __init__(self, model: str, base_url: str | None = None, *, concurrency: int = 4,
                 timeout: float = 120.0, max_retries: int = 2, mode: str = "text"):
        import openai  # lazy: only this backend needs it

        if concurrency < 1:
            raise RewardsmithError(f"openai backend: concurrency={concurrency}; use 1 or more")
        self.model = model
        self.model_id = f"openai:{model}"
        self.mode = check_mode(mode, f"openai:{model}")
        self.concurrency = concurrency
        self.max_retries = max_retries
        self._client = openai.OpenAI(
            api_key=os.environ.get("OPENAI_API_KEY") or "not-needed-for-local-servers",
            base_url=base_url, timeout=timeout, max_retries=max_retries,
        )

    def _one(self, request: Request) -> Completion | RequestFailure:
        import openai

        params = dict(model=self.model, messages=request.message_dicts(), max_tokens=request.max_tokens,
                      temperature=request.temperature, top_p=request.top_p)
        if request.seed is not None:
            params["seed"] = request.seed
        if request.choices:
            params.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(RETRY_DELAY * 2 ** (attempt - 1))
            try:
                response = self._client.chat.completions.create(**params)
            except openai.OpenAIError as e:  # after the client's bounded retries
                return RequestFailure(f"{type(e).__name__}: {str(e)[:300]}")
            except ValueError as e:  # JSON or UTF-8 decoding of a 200's body
                unreadable = f"unreadable reply ({type(e).__name__}: {str(e)[:200]})"
                continue
            if hasattr(response, "choices"):
                break
            # A body that is not JSON under a non-JSON content type comes back as a str.
            unreadable = f"reply is not a chat completion: {str(response)[:200]!r}"
        else:
            return RequestFailure(f"{unreadable}, {self.max_retries + 1} attempt(s)")
        if not response.choices:
            return RequestFailure("server returned no choices")
        usage = response.usage
        choice = response.choices[0]
        probs = None
        if request.choices:
            content = choice.logprobs.content if choice.logprobs else None
            if not content:
                return RequestFailure("server returned no logprobs for a logprob request; "
                                      f"use text mode ({self.model_id}@URL?mode=text) with this server")
            tokens = [(t.token, [(x.token, x.logprob) for x in t.top_logprobs or ()]) for t in content]
            probs = choice_probs(tokens, request.choices, request.prefix)
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            probs=probs,
        )

    def complete(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion | RequestFailure]]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._one, r): i for i, r in enumerate(requests)}
            for future in as_completed(futures):
                yield futures[future], future.result()


def from_spec(rest: str, *, concurrency: int = 4, timeout: float = 120.0, max_retries: int = 2,
              mode: str = "text", **_) -> OpenAIBackend:
    """`MODEL@URL` or `MODEL` (URL from $OPENAI_BASE_URL, else the official endpoint)."""
    model, _, url = rest.partition("@")
    if not model:
        raise RewardsmithError(f"openai backend spec {rest!r}: missing model name, e.g. 'openai:smollm2@http://127.0.0.1:8080/v1'")
    if url and not url.startswith(("http://", "https://")):
        raise RewardsmithError(f"openai backend spec {rest!r}: URL {url!r} must start with http:// or https://")
    return OpenAIBackend(model, url or None, concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                         mode=mode)
