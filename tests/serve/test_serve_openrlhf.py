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


# --- what OpenRLHF's client sends, end to end ---------------------------------------------------
# OpenRLHF (main, read from its source): the experience maker decodes every rollout with
# `tokenizer.batch_decode(remove_pad_token(sequences, attention_mask), skip_special_tokens=False)`,
# where a sequence is the prompt's tokens (the dataset prompt rendered by the policy's chat template,
# tokenised without special tokens) followed by the generated tokens ending in eos. The
# RemoteRewardModel posts each chunk with `requests.post(url, json={"query": queries, "prompts":
# prompts, "labels": labels}, headers={"Content-Type": "application/json"}, timeout=180)` and
# `update_samples_with_rewards` reads `rewards`, `scores` (when present) and every `extra_logs`
# key of each reply as tensors, concatenated over chunks.
ROLLOUTS = [(CONVERSATIONS[0], "9分ゆでます。"), (CONVERSATIONS[1], "こんにちは！ご用件は何でしょうか。"),
            (CONVERSATIONS[2], "5호선입니다."), (CONVERSATIONS[0], "Boil it.")]


def _openrlhf_rollouts(policy_tokenizer, prompt_texts, responses):
    """(queries, prompts) exactly as OpenRLHF builds them from a policy's token ids."""
    queries = []
    for prompt, response in zip(prompt_texts, responses):
        ids = policy_tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids += policy_tokenizer(response, add_special_tokens=False)["input_ids"] + [policy_tokenizer.eos_token_id]
        queries.append(policy_tokenizer.decode(ids, skip_special_tokens=False))
    return queries, list(prompt_texts)


def _post_like_openrlhf(url, queries, prompts, labels, chunks=2):
    """OpenRLHF's client: one POST per chunk (one per server), then its reading of the replies."""
    import requests
    import torch

    infos = []
    size = -(-len(queries) // chunks)
    for i in range(0, len(queries), size):
        r = requests.post(url=url, json={"query": queries[i:i + size], "prompts": prompts[i:i + size],
                                         "labels": labels[i:i + size]},
                          headers={"Content-Type": "application/json"}, timeout=180)
        r.raise_for_status()
        infos.append(r.json())
    rewards = torch.cat([torch.as_tensor(info["rewards"]) for info in infos])
    scores = torch.cat([torch.as_tensor(info["scores"]) for info in infos]) if "scores" in infos[0] else rewards
    logs = {k: torch.cat([torch.as_tensor(info["extra_logs"][k]) for info in infos])
            for k in infos[0].get("extra_logs", {})}
    return rewards.tolist(), scores.tolist(), {k: v.tolist() for k, v in logs.items()}


def test_openrlhf_client_chat_policy(serve, decoder_rm_dir):
    """A policy sharing the reward model's chat template: the library's reward for every rollout."""
    from rewardsmith.score import Scorer

    server = serve(decoder_rm_dir)
    tok = server.rm.tokenizer
    prompts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c, _ in ROLLOUTS]
    queries, prompts = _openrlhf_rollouts(tok, prompts, [r for _, r in ROLLOUTS])
    assert queries[0].endswith(tok.eos_token)  # the generated eos, decoded with special tokens
    rewards, scores, logs = _post_like_openrlhf(f"{server.url}/get_reward", queries, prompts, ["", "", "", ""])
    expected = Scorer(server.rm, precision="fp32").score(ROLLOUTS)
    assert rewards == pytest.approx(expected, abs=1e-6)
    assert scores == rewards
    m = server.rm.manifest
    assert logs == {"calibrated_rewards": pytest.approx([(r - m.score_mean) / m.score_std for r in expected])}


def test_openrlhf_client_encoder_with_another_policy(serve, encoder_rm_dir, tiny_decoder_dir):
    """An encoder reward model (the Korean card's) behind a decoder policy: the policy's eos text
    ('</s>') arrives on every query; --policy-eos names it so it is not scored as part of the answer."""
    from transformers import AutoTokenizer

    from rewardsmith.score import Scorer

    policy = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    items = [([{"role": "user", "content": c[-1]["content"]}], r) for c, r in ROLLOUTS]
    queries, prompts = _openrlhf_rollouts(policy, [c[0]["content"] for c, _ in items], [r for _, r in items])
    assert queries[0].endswith("</s>")
    labels = ["5", "", "", ""]
    expected = None
    for policy_eos in ((), ("</s>",)):
        server = serve(encoder_rm_dir, policy_eos=policy_eos)
        expected = expected or Scorer(server.rm, precision="fp32")
        rewards, _, _ = _post_like_openrlhf(f"{server.url}/get_reward", queries, prompts, labels)
        if policy_eos:
            assert rewards == pytest.approx(expected.score(items), abs=1e-6)
        else:  # without it the eos text is part of the response
            assert rewards == pytest.approx(expected.score([(c, r + "</s>") for c, r in items]), abs=1e-6)
