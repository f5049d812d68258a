"""Request and response bodies of the reward server (pydantic; they are also the OpenAPI docs).

Every request model forbids unknown fields, so a typo (`"respones"`) is a 422 that names the field
instead of a silently ignored key. Per-server limits (items per request, characters per item) are
not known when these classes are defined; `app.py` checks them after parsing and reports the same
way. Conversations use the project's one shape: a list of `{"role", "content"}` ending with a user
turn; `prompt` is the one-turn shorthand `[{"role": "user", "content": prompt}]`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from rewardsmith.data.record import Message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _whole_characters(value: str) -> str:
    # JSON may escape half of a UTF-16 pair ("\ud800") on its own; Python keeps it, the tokenizer
    # cannot encode it (it raised a TypeError: a 500 before this check).
    if m := _SURROGATE.search(value):
        raise ValueError(f"contains an unpaired UTF-16 surrogate {m[0]!r} at character {m.start()}; send "
                         "characters outside the Basic Multilingual Plane whole (UTF-8, or a \\uD83D\\uDE00 pair)")
    return value


# Every text field: a str with no unpaired surrogate.
Text = Annotated[str, AfterValidator(_whole_characters)]
# The schema says what the validators check, so clients (and the schema fuzzer) know a blank
# response is refused; the validator gives the message.
_NON_BLANK = {"pattern": r"\S"}
NonBlank = Annotated[Text, Field(json_schema_extra=_NON_BLANK)]


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: Text


class _Conversation(_Strict):
    """`messages` (a conversation ending with a user turn) or `prompt` (one user turn), not both."""

    messages: list[ChatMessage] | None = Field(
        default=None, min_length=1, description="The conversation so far, ending with a user turn."
    )
    prompt: Text | None = Field(default=None, min_length=1, description="Shorthand for one user turn.")

    @model_validator(mode="after")
    def _one_of(self):
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of `messages` (a list of {role, content}) or `prompt` (a string)")
        if self.messages is not None and self.messages[-1].role != "user":
            raise ValueError(
                f"`messages` must end with a user turn (the last one has role {self.messages[-1].role!r}); "
                "the response to score goes in its own field"
            )
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        # "Exactly one of messages / prompt" in the OpenAPI schema too (null counts as absent).
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema["oneOf"] = [{"required": ["messages"], "properties": {"messages": {"type": "array"}}},
                           {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}}]
        return schema

    def conversation(self) -> list[Message]:
        if self.messages is None:
            return [{"role": "user", "content": self.prompt}]
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def characters(self) -> int:
        return len(self.prompt) if self.messages is None else sum(len(m.content) for m in self.messages)


def _non_blank(value: str, what: str = "response") -> str:
    if not value.strip():
        raise ValueError(f"the {what} is empty (or only whitespace); there is nothing to score")
    return value


class ScoreItem(_Conversation):
    response: NonBlank = Field(description="The assistant response to score.")

    _check_response = field_validator("response")(_non_blank)


class ScoreRequest(_Strict):
    items: list[ScoreItem] = Field(min_length=1, description="Conversations, each with one response.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"items": [
            {"prompt": "栄養バランスの良い食事とは？", "response": "主食・主菜・副菜をそろえることです。"},
            {"messages": [{"role": "user", "content": "광화문에 어떻게 가나요?"}],
             "response": "지하철 5호선 광화문역에서 내리세요."},
        ]}]},
    )


class ScoreResponse(BaseModel):
    rewards: list[float] = Field(description="Raw rewards (the model's scalar output), in request order.")
    calibrated: list[float] | None = Field(
        description="(reward - score_mean) / score_std from the model's manifest; null when the manifest "
        "carries no calibration statistics."
    )


class CompareRequest(_Conversation):
    a: NonBlank = Field(description="The first response.")
    b: NonBlank = Field(description="The second response.")

    _check_a = field_validator("a")(lambda v: _non_blank(v, "response `a`"))
    _check_b = field_validator("b")(lambda v: _non_blank(v, "response `b`"))

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"prompt": "How do I boil an egg?", "a": "Boil it for nine minutes.", "b": "Eggs are oval."}
        ]},
    )


class CompareResponse(BaseModel):
    p_a_better: float = Field(description="P(a is better than b) = sigmoid(reward_a - reward_b) (Bradley-Terry).")
    rewards: list[float] = Field(description="[reward_a, reward_b], raw.")
    calibrated: list[float] | None


class BestOfNRequest(_Conversation):
    responses: list[NonBlank] = Field(min_length=1, description="Candidate responses to rank.")

    @field_validator("responses")
    @classmethod
    def _non_blank_each(cls, values: list[str]) -> list[str]:
        for i, v in enumerate(values):
            _non_blank(v, f"response {i}")
        return values

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"prompt": "한국의 수도는?", "responses": ["서울입니다.", "부산입니다.", "모르겠어요."]}
        ]},
    )


class RankedResponse(BaseModel):
    index: int = Field(description="Position of the response in the request.")
    reward: float
    calibrated: float | None


class BestOfNResponse(BaseModel):
    best: int = Field(description="Index of the highest-scoring response.")
    ranking: list[RankedResponse] = Field(description="All responses, best first (ties keep request order).")


class GetRewardRequest(_Strict):
    """OpenRLHF's remote reward model request (`--remote_rm_url http://host:port/get_reward`).

    OpenRLHF posts `{"query": [...], "prompts": [...], "labels": [...]}`: each query is the prompt
    plus the generated response as one string, already rendered with the policy's chat template
    (possibly with pad / eos tokens around it); `prompts[i]` is the prompt part of `query[i]`.
    """

    query: list[Text] = Field(min_length=1, description="prompt + response, one string each.")
    prompts: list[Text] | None = Field(default=None, description="The prompt part of each query (optional).")
    labels: list[Any] | None = Field(default=None, description="Accepted for compatibility and ignored.")

    @model_validator(mode="after")
    def _same_length(self):
        if self.prompts is not None and len(self.prompts) != len(self.query):
            raise ValueError(f"`prompts` has {len(self.prompts)} entries but `query` has {len(self.query)}; "
                             "give one prompt per query or leave `prompts` out")
        return self

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"query": ["<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"],
             "prompts": ["<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"]}
        ]},
    )


class GetRewardResponse(BaseModel):
    rewards: list[float] = Field(description="Raw rewards, one per query (what OpenRLHF reads).")
    scores: list[float] = Field(description="The same values; newer OpenRLHF versions read `scores` for filtering.")
    extra_logs: dict[str, list[float]] = Field(description="Logged by OpenRLHF; holds the calibrated rewards.")


class Health(BaseModel):
    status: Literal["ok"]
    model: str
    input_format: str
    max_length: int
    truncation_side: str
    calibrated: bool
    queue_items: int


class FieldError(BaseModel):
    field: str = Field(description='Where in the body, e.g. "items[0].response"; "body" for the whole body.')
    message: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx: `detail` is one line naming the field and the fix; `errors` lists each problem
    (present for invalid bodies and limits)."""

    detail: str
    errors: list[FieldError] | None = None
