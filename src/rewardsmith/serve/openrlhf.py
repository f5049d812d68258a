"""OpenRLHF's `/get_reward` queries -> (conversation, response), the input every scorer call takes.

OpenRLHF (`--remote_rm_url http://host:port/get_reward`) posts `{"query": [...], "prompts": [...],
"labels": [...]}` and reads `rewards` from the reply. Each query is prompt + generated response as
ONE string, already rendered with the policy's chat template, sometimes with pad / eos tokens
around it; `prompts[i]` (sent by OpenRLHF >= 0.5) is the prompt part of `query[i]`. OpenRLHF's own
server tokenises that string as it is. We score (conversation, response) through the library's one
input format instead, so the query is parsed back:

1. Pad tokens are stripped from both ends (as OpenRLHF's server does).
2. Decoders ("chat_template"): the query is parsed with the MODEL'S chat template -- its turn
   markers are learned by rendering a probe conversation -- into messages and the final assistant
   response, and accepted only if rendering them again gives back exactly the query text (an
   eos / end-of-turn marker after the response is tolerated). Then the tokens are exactly those
   OpenRLHF's server would score, and the reward equals `/score` for the same conversation.
   A query the template does not reproduce (the policy uses another template, a system prompt the
   probe does not cover, ...) is scored as `[{"role": "user", "content": <prompt text>}]` plus the
   response (split at `prompts[i]` when given, else the whole query is the response) -- the markup
   is then part of the text -- and `rewardsmith_get_reward_unparsed_total` counts it.
3. Encoders ("pair", the Korean card's `prompt [SEP] response`): `prompts[i]` is required to split
   the query; the prompt is one user turn, the rest (eos stripped) is the response.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rewardsmith.errors import RewardsmithError
from rewardsmith.models.formatting import render
from rewardsmith.models.manifest import Manifest

log = logging.getLogger(__name__)

Item = tuple[list[dict], str]

# Sentinels for the probe conversation: private-use characters no template writes itself.
_U1, _A1, _U2, _R = "\ue001", "\ue002", "\ue003", "\ue004"


@dataclass(frozen=True)
class _Markers:
    """The text a chat template writes around turns, learned from one probe rendering.

    head:  before the first user message (BOS, a default system prompt, the user opener).
    ua:    after a user message, before the assistant's (user closer + assistant opener).
    au:    after an assistant message, before the next user's.
    close: after the final response.
    """

    head: str
    ua: str
    au: str
    close: str


def _markers(tokenizer, manifest: Manifest) -> _Markers | None:
    try:
        probe = render(tokenizer, manifest, [{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1},
                                             {"role": "user", "content": _U2}], _R)["text"]
    except Exception:  # a template that refuses the probe: every query takes the fallback
        return None
    at = [probe.find(s) for s in (_U1, _A1, _U2, _R)]
    if -1 in at or at != sorted(at):
        return None
    head, ua, au, ua2, close = (probe[:at[0]], probe[at[0] + 1:at[1]], probe[at[1] + 1:at[2]],
                                probe[at[2] + 1:at[3]], probe[at[3] + 1:])
    if ua != ua2 or not ua or not au:
        return None
    return _Markers(head, ua, au, close)


def _strip_pad(text: str, pad: str | None) -> str:
    if pad:
        while text.startswith(pad):
            text = text[len(pad):]
        while text.endswith(pad):
            text = text[: -len(pad)]
    return text


def _parse_chat(query: str, prompt: str | None, m: _Markers, tokenizer, manifest: Manifest) -> Item | None:
    """(messages, response) whose rendering is `query` (give or take the final end marker), else None."""
    bos = getattr(tokenizer, "bos_token", None)
    if bos and m.head.startswith(bos) and not query.startswith(bos):
        # Decoded without special tokens: OpenRLHF's server would add BOS back when tokenising.
        query, prompt = bos + query, (bos + prompt if prompt is not None else None)
    if not query.startswith(m.head):
        return None
    if prompt is not None and query.startswith(prompt) and prompt.endswith(m.ua):
        cut = len(prompt)
    else:
        cut = query.rfind(m.ua) + len(m.ua)
        if cut < len(m.head) + len(m.ua):
            return None
    turns_text, response = query[len(m.head): cut - len(m.ua)], query[cut:]
    # Generated text ends with the eos token (vLLM output), the template's closer, or both.
    eos = getattr(tokenizer, "eos_token", None)
    if eos and response.endswith(eos):
        response = response[: -len(eos)]
    for end in (m.close, m.close.rstrip()):
        if end and response.endswith(end):
            response = response[: -len(end)]
            break
    conversation: list[dict] = []
    for segment in turns_text.split(m.au):
        user, sep, assistant = segment.partition(m.ua)
        conversation.append({"role": "user", "content": user})
        if sep:
            conversation.append({"role": "assistant", "content": assistant})
    if conversation[-1]["role"] != "user" or not response.strip():
        return None
    # Accept only what the template reproduces: everything up to the response, character for character.
    again = render(tokenizer, manifest, conversation, response)["text"]
    if not again.endswith(m.close) or again[: len(again) - len(m.close)] != query[:cut] + response:
        return None
    return conversation, response


def query_items(tokenizer, manifest: Manifest, queries: list[str], prompts: list[str] | None) -> tuple[list[Item], int]:
    """(items to score, how many queries took the plain-text fallback). See the module docstring.

    Raises RewardsmithError naming the query when it cannot be scored at all.
    """
    pad = getattr(tokenizer, "pad_token", None)
    eos = getattr(tokenizer, "eos_token", None)
    items: list[Item] = []
    unparsed = 0
    markers = _markers(tokenizer, manifest) if manifest.input_format == "chat_template" else None
    for i, raw in enumerate(queries):
        query = _strip_pad(raw, pad)
        prompt = _strip_pad(prompts[i], pad) if prompts is not None else None
        if manifest.input_format == "pair":
            if prompt is None or not query.startswith(prompt):
                why = "`prompts` is missing" if prompt is None else f"query[{i}] does not start with prompts[{i}]"
                raise RewardsmithError(
                    f"query[{i}]: this model scores `prompt [SEP] response` and needs the prompt to split the "
                    f"query, but {why}; send {{\"query\": [...], \"prompts\": [...]}} (OpenRLHF >= 0.5 does)")
            response = query[len(prompt):]
            if eos and response.endswith(eos):
                response = response[: -len(eos)]
            items.append(([{"role": "user", "content": prompt}], response))
            continue
        parsed = _parse_chat(query, prompt, markers, tokenizer, manifest) if markers else None
        if parsed is None:
            unparsed += 1
            if prompt is not None and query.startswith(prompt):
                parsed = ([{"role": "user", "content": prompt}], query[len(prompt):])
            else:
                parsed = ([{"role": "user", "content": ""}], query)
        items.append(parsed)
    for i, (_, response) in enumerate(items):
        if not response.strip():
            raise RewardsmithError(f"query[{i}]: the response part is empty after removing the prompt and "
                                   "pad/eos tokens; there is nothing to score")
    if unparsed:
        log.warning("/get_reward: %d of %d queries do not follow the model's chat template; scored as plain text",
                    unparsed, len(queries))
    return items, unparsed
