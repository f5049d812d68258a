"""rewardsmith models inside TRL's GRPOTrainer: the rewards TRL logs are the library's scores."""

from __future__ import annotations

import pytest
import torch

from rewardsmith.errors import RewardsmithError
from rewardsmith.integrations.trl import RewardFunction
from rewardsmith.models import load_reward_model
from rewardsmith.score import Scorer

PROMPTS = ["How do I boil an egg?", "栄養バランスの良い食事とは何ですか？", "광화문에 어떻게 가나요?",
           "The quick brown fox?"]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    import tiny_models

    return tiny_models.tiny_policy(tmp_path_factory.mktemp("policy"))


def _grpo(policy, reward_funcs, dataset, out, steps=3):
    """A real GRPO run from the pinned TRL: `steps` steps of 4 completions (2 prompts x 2) of 6 tokens."""
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    seen = []

    class Capture(TrainerCallback):
        # TRL keeps the latest generation batch's prompts, completions and per-function rewards in
        # `_logs` (its completions table); one generation per step here, so each step's is read once.
        def on_step_end(self, args, state, control, **kwargs):
            logs = trainer._logs
            seen.append({"prompt": list(logs["prompt"]), "completion": list(logs["completion"]),
                         "rewards": {k: list(v) for k, v in logs["rewards"].items()}})

    args = GRPOConfig(output_dir=str(out), use_cpu=True, bf16=False, per_device_train_batch_size=4,
                      num_generations=2, max_completion_length=6, max_steps=steps, logging_steps=1,
                      learning_rate=1e-3, report_to="none", save_strategy="no", seed=0, temperature=1.0,
                      dataloader_num_workers=0)
    trainer = GRPOTrainer(model=str(policy), reward_funcs=reward_funcs, args=args, train_dataset=dataset,
                          callbacks=[Capture()])
    trainer.train()
    steps = [h for h in trainer.state.log_history if any(k.startswith("rewards/") for k in h)]
    return seen, steps


@pytest.mark.parametrize("conversational", [False, True], ids=["plain-text", "conversational"])
def test_grpo_logs_the_library_scores(policy, encoder_rm, decoder_rm, tmp_path, conversational):
    from datasets import Dataset

    prompts = [[{"role": "user", "content": p}] for p in PROMPTS] if conversational else PROMPTS
    funcs = [RewardFunction(encoder_rm, precision="fp32", name="enc"),
             RewardFunction(decoder_rm, precision="fp32", name="dec")]
    seen, logged = _grpo(policy, funcs, Dataset.from_dict({"prompt": prompts}), tmp_path)

    assert len(seen) == len(logged) == 3
    for name, path in (("enc", encoder_rm), ("dec", decoder_rm)):
        library = Scorer(load_reward_model(path), precision="fp32")  # loaded afresh: nothing shared with TRL's
        for step, log in zip(seen, logged):
            items = funcs[0].items(step["prompt"], step["completion"])
            assert len(items) == 4 and all(isinstance(r, str) for _, r in items)
            expected = library.score(items)
            assert step["rewards"][name] == pytest.approx(expected, abs=1e-4)
            assert log[f"rewards/{name}/mean"] == pytest.approx(sum(expected) / 4, abs=1e-4)
        assert len({round(r, 3) for s in seen for r in s["rewards"][name]}) > 4  # the rewards really vary


def test_normalize_uses_the_manifest_statistics(encoder_rm):
    raw = RewardFunction(encoder_rm, precision="fp32")
    normalized = RewardFunction(encoder_rm, precision="fp32", normalize=True)
    prompts, completions = PROMPTS[:2], ["Nine minutes.", "主食、主菜、副菜です。"]
    assert normalized(prompts, completions) == pytest.approx([(r - 0.5) / 2.0 for r in raw(prompts, completions)])
    assert raw.__name__ == encoder_rm.name


def test_bad_inputs_name_what_trl_passed(encoder_rm, tiny_encoder_dir):
    f = RewardFunction(encoder_rm, precision="fp32")
    with pytest.raises(RewardsmithError, match=r"completions\[1\]"):
        f(PROMPTS[:2], ["fine", [{"role": "user", "content": "not an answer"}]])
    with pytest.raises(RewardsmithError, match=r"prompts\[0\]\[0\].content is list"):
        f([[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]], ["x"])
    with pytest.raises(RewardsmithError, match="normalize=True needs score_mean"):
        RewardFunction(tiny_encoder_dir, normalize=True)


@pytest.fixture(scope="module")
def pad_eos_rm(tmp_path_factory):
    import tiny_models

    from rewardsmith.models import load_reward_model

    path = tiny_models.tiny_decoder_pad_is_eos(tmp_path_factory.mktemp("rm-pad-eos"))
    rm = load_reward_model(path)
    assert rm.tokenizer.pad_token_id == rm.tokenizer.eos_token_id
    with torch.no_grad():
        rm.model.score.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(1))
    rm.model.save_pretrained(path)
    return path


def _columns(seen, name):
    return [r for step in seen for r in step["rewards"][name]]


def test_trls_own_model_route_scores_differently(policy, encoder_rm, decoder_rm, pad_eos_rm, tmp_path):
    """`reward_funcs="path"` makes TRL tokenise text its own way; RewardFunction scores as rewardsmith does.

    encoder, plain-text prompts: TRL scores `prompt + completion` as one string without [CLS]/[SEP]
    (conversational prompts fail outright there: an encoder tokenizer has no chat template).
    pad == eos decoder (Llama-3 style, every turn ends in eos): TRL reads the logit at the last
    token that is not the pad id, i.e. before the final eos, where rewardsmith reads the eos itself.
    rewardsmith's own decoders carry a real pad token: on conversational prompts both routes agree.
    """
    from datasets import Dataset

    seen, _ = _grpo(policy, [str(encoder_rm), RewardFunction(encoder_rm, precision="fp32", name="ours")],
                    Dataset.from_dict({"prompt": PROMPTS}), tmp_path / "plain", steps=1)
    trl_route, ours = _columns(seen, encoder_rm.name), _columns(seen, "ours")
    assert max(abs(a - b) for a, b in zip(trl_route, ours)) > 0.1

    conversations = [[{"role": "user", "content": p}] for p in PROMPTS]
    funcs = [str(pad_eos_rm), RewardFunction(pad_eos_rm, precision="fp32", name="ours_pad_eos"),
             str(decoder_rm), RewardFunction(decoder_rm, precision="fp32", name="ours_dec")]
    seen, _ = _grpo(policy, funcs, Dataset.from_dict({"prompt": conversations}), tmp_path / "chat", steps=1)
    trl_route, ours = _columns(seen, pad_eos_rm.name), _columns(seen, "ours_pad_eos")
    assert max(abs(a - b) for a, b in zip(trl_route, ours)) > 0.1
    assert _columns(seen, decoder_rm.name) == pytest.approx(_columns(seen, "ours_dec"), abs=1e-4)
