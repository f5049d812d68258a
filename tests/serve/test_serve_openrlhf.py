"""OpenRLHF queries -> (conversation, response): the parse reproduces the model's own rendering."""

from __future__ import annotations

import pytest

from rewardsmith.models import Manifest, render
from rewardsmith.serve.openrlhf import QueryParser

CONVERSATIONS = [
    [{"role": "user", "content": "卵のゆで方は?"}],
    [{"role": "system", "content": "丁寧に答えてください。"}, {"role": "user", "content": "こんにちは"}],
    [{"role": "user", "content": "광화문에 어떻게 가나요?"}, {"role": "assistant", "content": "지하철을 타세요."},
     {"role": "user", "content": "몇 호선이요?"}],
]
RESPONSE = "5호선입니다. 9分ゆでます。 Nine minutes."


def _chat_parser(tokenizer):
    template = tokenizer.chat_template
    manifest = Manifest(input_format="chat_template", max_length=2048, truncation_side="left",
                        pooling="last_token", chat_template=template)
    return QueryParser(tokenizer, manifest), manifest


def _check_round_trip(tokenizer):
    parser, manifest = _chat_parser(tokenizer)
    assert parser.markers is not None
    for conversation in CONVERSATIONS:
        text = render(tokenizer, manifest, conversation, RESPONSE)["text"]
        prompt = text[: text.rindex(RESPONSE)]
        for prompts in ([prompt], None):
            (parsed,), unparsed = parser.items([text], prompts)
            assert unparsed == 0
            assert parsed[1] == RESPONSE
            # The same text again, so the same tokens and the same reward as /score would give.
            assert render(tokenizer, manifest, *parsed)["text"] == text
        if tokenizer.eos_token:  # generated text: the response ends in eos, not the template's closer
            (parsed,), unparsed = parser.items([prompt + RESPONSE + tokenizer.eos_token], None)
            assert unparsed == 0 and parsed[1] == RESPONSE


def test_round_trip_with_the_tiny_chatml_decoder(tiny_decoder_dir):
    from transformers import AutoTokenizer

    _check_round_trip(AutoTokenizer.from_pretrained(tiny_decoder_dir))


@pytest.mark.integration
def test_round_trip_with_smollm2_template_and_its_default_system_prompt(embedded_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model("smollm2-135m-instruct"))
    assert "system" in tokenizer.chat_template  # its template injects a default system prompt
    _check_round_trip(tokenizer)


def test_foreign_template_falls_back_to_plain_text(tiny_decoder_dir):
    from transformers import AutoTokenizer

    parser, _ = _chat_parser(AutoTokenizer.from_pretrained(tiny_decoder_dir))
    query = "[INST] hi [/INST] hello"
    items, unparsed = parser.items([query, query], ["[INST] hi [/INST]", None])
    assert unparsed == 2
    assert items[0] == ([{"role": "user", "content": "[INST] hi [/INST]"}], " hello")
    assert items[1] == ([{"role": "user", "content": ""}], query)


def test_empty_response_is_refused(tiny_decoder_dir):
    from transformers import AutoTokenizer

    from rewardsmith.errors import RewardsmithError

    parser, _ = _chat_parser(AutoTokenizer.from_pretrained(tiny_decoder_dir))
    with pytest.raises(RewardsmithError, match=r"query\[0\]: the response part is empty"):
        parser.items(["prompt only"], ["prompt only"])
