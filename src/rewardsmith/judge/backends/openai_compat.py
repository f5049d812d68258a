"""Any OpenAI-compatible chat server through the official `openai` client.

Bounded concurrency (a thread pool of `concurrency` workers), a per-request timeout, and the
client's own limited retries (`max_retries`, exponential back-off on 429/5xx/connection errors).
A request still failing after that becomes a `RequestFailure`, counted by the caller; nothing
here retries forever. `max_tokens` is sent as such (llama.cpp, vLLM and Ollama read it).
The API key comes from $OPENAI_API_KEY; local servers ignore it, so a placeholder is used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from rewardsmith.errors import RewardsmithError
from rewardsmith.judge.backends import Completion, Request, RequestFailure


class OpenAIBackend:
    def __init__(self, model: str, base_url: str | None = None, *, concurrency: int = 4,
                 timeout: float = 120.0, max_retries: int = 2):
        import openai  # lazy: only this backend needs it

        if concurrency < 1:
            raise RewardsmithError(f"openai backend: concurrency={concurrency}; use 1 or more")
        self.model = model
        self.model_id = f"openai:{model}"
        self.concurrency = concurrency
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
        try:
            response = self._client.chat.completions.create(**params)
        except openai.OpenAIError as e:  # after the client's bounded retries
            return RequestFailure(f"{type(e).__name__}: {str(e)[:300]}")
        if not response.choices:
            return RequestFailure("server returned no choices")
        usage = response.usage
        return Completion(
            text=response.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def complete(self, requests: Sequence[Request]) -> Iterator[tuple[int, Completion | RequestFailure]]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._one, r): i for i, r in enumerate(requests)}
            for future in as_completed(futures):
                yield futures[future], future.result()


def from_spec(rest: str, *, concurrency: int = 4, timeout: float = 120.0, max_retries: int = 2,
              **_) -> OpenAIBackend:
    """`MODEL@URL` or `MODEL` (URL from $OPENAI_BASE_URL, else the official endpoint)."""
    model, _, url = rest.partition("@")
    if not model:
        raise RewardsmithError(f"openai backend spec {rest!r}: missing model name, e.g. 'openai:smollm2@http://127.0.0.1:8080/v1'")
    if url and not url.startswith(("http://", "https://")):
        raise RewardsmithError(f"openai backend spec {rest!r}: URL {url!r} must start with http:// or https://")
    return OpenAIBackend(model, url or None, concurrency=concurrency, timeout=timeout, max_retries=max_retries)
