"""The one input format: chat template / pair encoding, truncation, safe padding, pooling."""

from __future__ import annotations

import pytest
import torch

from rewardsmith.errors import RewardsmithError
from rewardsmith.models import (
    TruncationStats, collate, encode, flatten_prompt, init_reward_model, render, reward_forward,
)
from rewardsmith.models.manifest import CHATML_TEMPLATE

CONV = [{"role": "user", "content": "How do I boil an egg?"}]
LONG_CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "日本語の文章も正しく扱えるようにします。" * 12},
    {"role": "assistant", "content": "광화문에 어떻게 가나요? 지하철 5호선 광화문역에서 내리세요." * 6},
    {"role": "user", "content": "How do I boil an egg?"},
]
RESPONSE = "Put it in boiling water for nine minutes."


@pytest.fixture(scope="module")
def dec(tiny_decoder_dir):
    return init_reward_model(tiny_decoder_dir, max_length=64)


@pytest.fixture(scope="module")
def enc(tiny_encoder_dir):
    return init_reward_model(tiny_encoder_dir, max_length=64)


def test_decoder_gets_a_real_pad_token_distinct_from_eos(dec):
    tok = dec.tokenizer
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert dec.model.config.pad_token_id == tok.pad_token_id
    assert dec.model.get_input_embeddings().num_embeddings > tok.pad_token_id


def test_decoder_input_is_the_chat_template_untouched_when_it_fits(dec):
    ids = encode(dec.tokenizer, dec.manifest, CONV, RESPONSE)
    text = dec.tokenizer.apply_chat_template([*CONV, {"role": "assistant", "content": RESPONSE}], tokenize=False)
    assert text == render(dec.tokenizer, dec.manifest, CONV, RESPONSE)["text"]
    assert ids == dec.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert dec.tokenizer.decode(ids).endswith(RESPONSE + "<|im_end|>\n")


def test_decoder_without_template_gets_the_supplied_one(tiny_decoder_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    tok.chat_template = None
    tok.save_pretrained(tmp_path)
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((tiny_decoder_dir / name).read_bytes())
    rm = init_reward_model(tmp_path)
    assert rm.manifest.chat_template == CHATML_TEMPLATE
    text = render(rm.tokenizer, rm.manifest, CONV, RESPONSE)["text"]
    assert text.startswith("<s><|im_start|>user\nHow do I boil an egg?<|im_end|>\n<|im_start|>assistant\n")


def test_encoder_input_is_the_tokenizers_pair_encoding(enc):
    ids = encode(enc.tokenizer, enc.manifest, CONV, RESPONSE)
    assert ids == enc.tokenizer(CONV[0]["content"], RESPONSE)["input_ids"]
    assert enc.tokenizer.decode(ids) == f"[CLS]{CONV[0]['content']}[SEP]{RESPONSE}[SEP]"


def test_flatten_prompt_keeps_every_turn():
    assert flatten_prompt(CONV) == CONV[0]["content"]
    flat = flatten_prompt(LONG_CONV)
    assert flat.splitlines()[0] == "system: Be brief."
    assert flat.endswith("\nuser: How do I boil an egg?")


@pytest.mark.parametrize("which", ["dec", "enc"])
def test_left_truncation_cuts_the_oldest_prompt_tokens_and_keeps_the_response(which, request):
    rm = request.getfixturevalue(which)
    stats = TruncationStats()
    ids = encode(rm.tokenizer, rm.manifest, LONG_CONV, RESPONSE, stats=stats)
    text = rm.tokenizer.decode(ids)
    assert len(ids) == rm.manifest.max_length
    assert "How do I boil an egg?" in text and RESPONSE in text and "Be brief" not in text
    assert (stats.prompt_truncated, stats.response_truncated) == (1, 0)


@pytest.mark.parametrize("which", ["dec", "enc"])
def test_right_truncation_keeps_the_start_of_the_prompt(which, request):
    import dataclasses

    rm = request.getfixturevalue(which)
    manifest = dataclasses.replace(rm.manifest, truncation_side="right")
    text = rm.tokenizer.decode(encode(rm.tokenizer, manifest, LONG_CONV, RESPONSE))
    assert "Be brief" in text and RESPONSE in text and "How do I boil an egg?" not in text


@pytest.mark.parametrize("which", ["dec", "enc"])
def test_a_response_longer_than_max_length_is_cut_and_counted(which, request):
    rm = request.getfixturevalue(which)
    stats = TruncationStats()
    ids = encode(rm.tokenizer, rm.manifest, CONV, RESPONSE * 20, stats=stats)
    assert len(ids) == rm.manifest.max_length
    assert stats.response_truncated == 1
    assert rm.tokenizer.decode(ids).startswith(rm.tokenizer.decode(ids[:3]))  # still a well-formed start
    if which == "dec":
        assert rm.tokenizer.decode(ids).endswith("<|im_end|>\n")  # closing marker kept for last-token pooling


@pytest.mark.parametrize("which", ["dec", "enc"])
def test_prompt_tokens_keeps_the_question_beside_a_response_that_would_fill_max_length(which, request):
    import dataclasses

    rm = request.getfixturevalue(which)
    long_answer = RESPONSE * 20
    before = rm.tokenizer.decode(encode(rm.tokenizer, rm.manifest, CONV, long_answer))
    assert "boil an egg" not in before  # the default: the response takes everything, the question is gone
    manifest = dataclasses.replace(rm.manifest, prompt_tokens=24)
    stats = TruncationStats()
    ids = encode(rm.tokenizer, manifest, CONV, long_answer, stats=stats)
    text = rm.tokenizer.decode(ids)
    assert len(ids) == manifest.max_length
    assert "How do I boil an egg?" in text and len(text) < len(before) + len("How do I boil an egg?")
    assert (stats.prompt_truncated, stats.response_truncated) == (0, 1)
    if which == "dec":
        assert text.endswith("<|im_end|>\n")
    # a short response leaves the prompt all the room it had
    assert encode(rm.tokenizer, manifest, LONG_CONV, RESPONSE) == encode(rm.tokenizer, rm.manifest, LONG_CONV, RESPONSE)
    with pytest.raises(RewardsmithError, match="prompt_tokens"):
        dataclasses.replace(rm.manifest, prompt_tokens=rm.manifest.max_length)


def test_malformed_conversation_is_a_user_error(dec):
    with pytest.raises(RewardsmithError, match=r"conversation\[0\]"):
        encode(dec.tokenizer, dec.manifest, [{"role": "human", "content": "hi"}], "x")
    with pytest.raises(RewardsmithError, match="list of"):
        encode(dec.tokenizer, dec.manifest, "hi", "x")


def test_collate_pads_to_the_longest_on_either_side():
    right = collate([[5, 6, 7], [8]], pad_id=0)
    assert right["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    left = collate([[5, 6, 7], [8]], pad_id=0, padding_side="left")
    assert left["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("which", ["dec", "enc"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_scores_equal_unpadded_single_scores(which, side, request):
    """Golden pooling test: the reward is read at the last real token (decoders) / [CLS] (encoders)
    whatever the padding side, so padding never changes a score."""
    import copy

    rm = request.getfixturevalue(which)
    model = copy.deepcopy(rm.model)
    head = model.score if which == "dec" else model.classifier
    with torch.no_grad():  # a loud head: reading a wrong token would show far above the tolerance
        head.weight.mul_(1000)
    seqs = [encode(rm.tokenizer, rm.manifest, CONV, r) for r in (RESPONSE, "No.", RESPONSE + " Then cool it.")]
    assert len({len(s) for s in seqs}) == 3
    with torch.inference_mode():
        single = torch.cat([reward_forward(model, **collate([s], rm.pad_id)) for s in seqs])
        batch = reward_forward(model, **collate(seqs, rm.pad_id, padding_side=side))
    torch.testing.assert_close(batch, single, atol=1e-4, rtol=1e-5)
    assert single.std() > 1e-2  # the three inputs really score differently


def test_decoder_pools_the_last_real_token(dec):
    seq = encode(dec.tokenizer, dec.manifest, CONV, RESPONSE)
    batch = collate([seq, seq[:-2]], dec.pad_id)
    with torch.inference_mode():
        hidden = dec.model.base_model(input_ids=torch.tensor([seq])).last_hidden_state
        expected = dec.model.score(hidden[0, -1]).float()
        got = reward_forward(dec.model, **batch)
    torch.testing.assert_close(got[0:1], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("which", ["dec", "enc"])
def test_bf16_rewards_come_from_an_fp32_head(which, request):
    """Native bf16 weights (how score/serve/evaluate load them): the head's last linear runs in
    fp32, so rewards are not rounded to bf16's 8 significant bits (that made different answers tie)."""
    import copy

    rm = request.getfixturevalue(which)
    model = copy.deepcopy(rm.model).to(torch.bfloat16)
    seqs = [encode(rm.tokenizer, rm.manifest, CONV, RESPONSE + " x" * i) for i in range(8)]
    with torch.inference_mode():
        rewards = reward_forward(model, **collate(seqs, rm.pad_id))
    assert rewards.dtype == torch.float32
    assert (rewards.bfloat16().float() != rewards).any()  # off bf16's grid: computed in fp32
    head = model.score if which == "dec" else model.classifier
    assert next(head.parameters()).dtype == torch.bfloat16  # the weights themselves stay bf16
