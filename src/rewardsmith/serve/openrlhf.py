"""OpenRLHF's `/get_reward` queries -> (conversation, response), the input every scorer call takes.

OpenRLHF (`--remote_rm_url http://host:port/get_reward`) posts `{"query": [...], "prompts": [...],
"labels": [...]}` and reads `rewards` from the reply. Each query is prompt + generated response as
ONE string, already rendered with the policy's chat template, sometimes with pad / eos tokens
around it; `prompts[i]` (sent by OpenRLHF >= 0.5) is the prompt part of `query[i]`. OpenRLHF's own
server tokenises that string as it is. We score (conversation, response) through the library's one
input format instead, so the query is parsed back:

1. Pad tokens are stripped from both ends (as OpenRLHF's server does), and the policy's own eos
   text when the server was told it (`--policy-eos`): OpenRLHF decodes rollouts with the policy's
   special tokens, so a policy whose eos differs from the model's leaves it on every query.
2. Decoders ("chat_template"): the query is parsed with the MODEL'S chat template -- its turn
   markers are learned by rendering probe conversations -- into messages (an optional system
   turn, then user/assistant turns) and the final response, and accepted only if rendering them
   again gives back exactly the query text (the response may end in eos instead of the template's
   end-of-turn marker, and a missing BOS is added back, as OpenRLHF's tokeniser would). The
   reward then equals `/score` for the same conversation.
   A query the template does not reproduce (the policy uses another template, ...) is scored as
   `[{"role": "user", "content": <prompt text>}]` plus the response (split at `prompts[i]` when
   given, else the whole query is the response) -- the markup is then part of the text -- and
   `rewardsmith_get_reward_unparsed_total` counts it, so a mismatched setup shows on /metrics.
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

# Sentinels for the probe conversations: private-use characters no template writes itself.
_S, _U1, _A1, _U2, _R = "\ue000", "\ue001", "\ue002", "\ue003", "\ue004"


@dataclass(frozen=True)
class _Markers:
    """The text a chat template writes around turns, learned from probe renderings.

    head:       before the first user message (BOS, a default system prompt, the user opener).
    ua:         after a user message, before the assistant's (user closer + assistant opener).
    au:         after an assistant message, before the next user's.
    close:      after the final response.
    sys_head:   before a system message; None when the template does not take one.
    sys_user:   after a system message, before the first user message.
    """

    head: str
    ua: str
    au: str
    close: str
    sys_head: str | None
    sys_user: str | None


def _split_probe(probe: str, sentinels: str) -> list[str] | None:
    """The text around each sentinel, in order, or None when the template moved or dropped one."""
    at = [probe.find(s) for s in sentinels]
    if -1 in at or at != sorted(at):
        return None
    bounds = [0, *[x for i in at for x in (i, i + 1)], len(probe)]
    return [probe[bounds[k]:bounds[k + 1]] for k in range(0, len(bounds), 2)]


def _markers(tokenizer, manifest: Manifest) -> _Markers | None:
    turns = [{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1}, {"role": "user", "content": _U2}]
    try:
        parts = _split_probe(render(tokenizer, manifest, turns, _R)["text"], _U1 + _A1 + _U2 + _R)
    except Exception:  # a template that refuses the probe: every query takes the fallback
        return None
    if parts is None:
        return None
    head, ua, au, ua2, close = parts
    if ua != ua2 or not ua or not au:
        return None
    try:
        sys_parts = _split_probe(
            render(tokenizer, manifest, [{"role": "system", "content": _S}, *turns], _R)["text"], _S + _U1)
    except Exception:  # templates without system messages (e.g. Gemma's) raise
        sys_parts = None
    sys_head, sys_user = sys_parts[:2] if sys_parts else (None, None)
    return _Markers(head, ua, au, close, sys_head, sys_user)


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
    if prompt is not None and query.startswith(prompt) and prompt.endswith(m.ua):
        cut = len(prompt)
    else:
        cut = query.rfind(m.ua) + len(m.ua)
        if cut < len(m.ua):
            return None
    response = query[cut:]
    # Generated text ends with the eos token (vLLM output), the template's closer, or both.
    eos = getattr(tokenizer, "eos_token", None)
    if eos and response.endswith(eos):
        response = response[: -len(eos)]
    for end in (m.close, m.close.rstrip()):
        if end and response.endswith(end):
            response = response[: -len(end)]
            break
    if not response.strip():
        return None
    # Where the turns start: after the plain head, or after a system message (a template's default
    # system prompt can make both fit; the round trip below picks the one that is right).
    starts: list[tuple[list[dict], int]] = []
    if query.startswith(m.head):
        starts.append(([], len(m.head)))
    if m.sys_head is not None and query.startswith(m.sys_head):
        end_of_system = query.find(m.sys_user, len(m.sys_head))
        if end_of_system >= 0:
            starts.append(([{"role": "system", "content": query[len(m.sys_head):end_of_system]}],
                           end_of_system + len(m.sys_user)))
    for leading, body_at in starts:
        if body_at > cut - len(m.ua):
            continue
        conversation = list(leading)
        for segment in query[body_at: cut - len(m.ua)].split(m.au):
            user, sep, assistant = segment.partition(m.ua)
            conversation.append({"role": "user", "content": user})
            if sep:
                conversation.append({"role": "assistant", "content": assistant})
        if conversation[-1]["role"] != "user":
            continue
        # Accept only what the template reproduces: everything up to the response, character for character.
        again = render(tokenizer, manifest, conversation, response)["text"]
        if again.endswith(m.close) and again[: len(again) - len(m.close)] == query[:cut] + response:
            return conversation, response
    return None


class QueryParser:
    """Turns /get_reward queries into scorer items for one model (turn markers learned once)."""

    def __init__(self, tokenizer, manifest: Manifest, policy_eos: tuple[str, ...] = ()) -> None:
        self.tokenizer, self.manifest, self.policy_eos = tokenizer, manifest, policy_eos
        self.markers = _markers(tokenizer, manifest) if manifest.input_format == "chat_template" else None

    def items(self, queries: list[str], prompts: list[str] | None) -> tuple[list[Item], int]:
        """(items to score, how many queries took the plain-text fallback). See the module docstring.

        Raises RewardsmithError naming the query when it cannot be scored at all.
        """
        tokenizer, manifest = self.tokenizer, self.manifest
        pad = getattr(tokenizer, "pad_token", None)
        eos = getattr(tokenizer, "eos_token", None)
        items: list[Item] = []
        unparsed = 0
        for i, raw in enumerate(queries):
            query = _strip_pad(raw, pad)
            while self.policy_eos and query.endswith(self.policy_eos):
                query = query[: -len(next(e for e in self.policy_eos if query.endswith(e)))]
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
            parsed = _parse_chat(query, prompt, self.markers, tokenizer, manifest) if self.markers else None
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
            log.warning("/get_reward: %d of %d queries do not follow the model's chat template; scored as plain "
                        "text", unparsed, len(queries))
        return items, unparsed
