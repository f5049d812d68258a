"""The [CLS]-only last layer: the same rewards as the stock forward, and the stock model outside."""

from __future__ import annotations

import pytest
import torch

from rewardsmith.models.cls_only import cls_only_last_layer, supports_cls_only
from rewardsmith.models.formatting import collate
from rewardsmith.models.loading import reward_forward

# Right-padded rows of different lengths (the Scorer's batches), [CLS]=2 ... [SEP]=3, pad 0.
ROWS = [[2] + [10 + (7 * i) % 50 for i in range(n)] + [3] for n in (41, 33, 20, 6)]


def _tiny(kind: str, attn: str = "sdpa"):
    from transformers import (BertConfig, BertForSequenceClassification, RobertaConfig,
                              RobertaForSequenceClassification, XLMRobertaConfig,
                              XLMRobertaForSequenceClassification)

    torch.manual_seed(0)
    config_cls, model_cls = {
        "bert": (BertConfig, BertForSequenceClassification),
        "roberta": (RobertaConfig, RobertaForSequenceClassification),
        "xlm-roberta": (XLMRobertaConfig, XLMRobertaForSequenceClassification),
    }[kind]
    config = config_cls(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, num_labels=1, pad_token_id=0,
                        attn_implementation=attn)
    return model_cls(config).eval()


@pytest.mark.parametrize("kind", ["bert", "roberta", "xlm-roberta"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_rewards_equal_the_full_forward(kind, attn):
    model = _tiny(kind, attn)
    batch = collate(ROWS, 0)
    with torch.inference_mode():
        stock = reward_forward(model, **batch, right_padded=True)
        with cls_only_last_layer(model) as switched:
            fast = reward_forward(model, **batch, right_padded=True)
            # Proof the short path ran: the last layer returned the [CLS] row alone.
            assert model.base_model(**batch).last_hidden_state.shape[1] == 1
    assert switched is True
    assert torch.allclose(stock, fast, atol=1e-5), (stock, fast)
    assert not torch.allclose(stock, torch.zeros_like(stock))  # a real comparison, not of zeros


def test_outside_the_block_the_model_is_stock():
    model = _tiny("bert")
    batch = collate(ROWS, 0)
    layer = model.base_model.encoder.layer[-1]
    with torch.inference_mode():
        with cls_only_last_layer(model):
            with cls_only_last_layer(model):  # nested: the inner block must not undo the outer
                pass
            assert model.base_model(**batch).last_hidden_state.shape[1] == 1
        assert "forward" not in layer.__dict__
        assert model.base_model(**batch).last_hidden_state.shape[1] == batch["input_ids"].shape[1]
    assert set(model.state_dict()) == set(_tiny("bert").state_dict())


def test_unknown_families_and_decoders_are_left_alone():
    from transformers import (DistilBertConfig, DistilBertForSequenceClassification, LlamaConfig,
                              LlamaForSequenceClassification)

    distil = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=64, dim=32, n_layers=2, n_heads=4, hidden_dim=64, num_labels=1))
    llama = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        num_labels=1, pad_token_id=0))
    bert_decoder = _tiny("bert")
    bert_decoder.config.is_decoder = True
    for model in (distil, llama, bert_decoder):
        assert supports_cls_only(model) is False
        with cls_only_last_layer(model) as switched:
            assert switched is False


def test_scorer_rewards_match_the_stock_model(tiny_encoder_dir):
    from rewardsmith.models import encode, init_reward_model
    from rewardsmith.score import Scorer

    rm = init_reward_model(tiny_encoder_dir, max_length=96)
    items = [([{"role": "user", "content": p}], r) for p in ("How do I boil an egg?", "광화문에 어떻게 가나요?")
             for r in ("Nine minutes.", "Put it in boiling water, then cool it in cold water.")]
    rewards = Scorer(rm, precision="fp32").score(items)
    with torch.inference_mode():  # one at a time, no padding, the stock last layer
        encoded = [encode(rm.tokenizer, rm.manifest, c, r) for c, r in items]
        stock = [rm.model(input_ids=torch.tensor([ids])).logits[0, 0].item() for ids in encoded]
    assert max(abs(a - b) for a, b in zip(rewards, stock)) < 1e-5


def _last_layer_widths(model):
    """Records the sequence length the last layer returns, one entry per forward."""
    widths = []
    model.base_model.encoder.layer[-1].register_forward_hook(
        lambda module, args, output: widths.append((output[0] if isinstance(output, tuple) else output).shape[1]))
    return widths


def _bt_gradients(module, batch):
    """Bradley-Terry loss over (row 0 vs 1, row 2 vs 3) and every parameter's gradient."""
    module.zero_grad()
    rewards = module(**batch)
    loss = -torch.nn.functional.logsigmoid(rewards[0::2] - rewards[1::2]).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["bert", "roberta"])
@pytest.mark.parametrize("lora", [False, True])
def test_training_gradients_equal_the_stock_model(kind, lora):
    """RewardModule (training's forward) skips the dead rows in the forward and backward passes,
    and every trainable parameter gets the gradient the stock model would give it."""
    from rewardsmith.train.loop import RewardModule

    model = _tiny(kind).train()
    for module in model.modules():  # as training's disable_dropout: the two passes must see the same noise
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    if lora:
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8,
                                                 target_modules=["query", "value", "dense"]))
    inner = model.get_base_model() if lora else model
    widths = _last_layer_widths(inner)
    batch = collate(ROWS, 0)

    class Stock(torch.nn.Module):  # the same reward computation without the switch
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return reward_forward(inner, input_ids, attention_mask)

    stock_loss, stock = _bt_gradients(Stock(), batch)
    assert widths.pop() == batch["input_ids"].shape[1]
    fast_loss, fast = _bt_gradients(RewardModule(model), batch)
    assert widths.pop() == 1  # the short path ran
    assert torch.allclose(stock_loss, fast_loss, atol=1e-6)
    trainable = {n for n, p in Stock().named_parameters() if p.requires_grad}
    assert set(stock) == set(fast) == trainable  # every trainable parameter got a gradient in both
    for name, grad in stock.items():
        assert torch.allclose(grad, fast[name], atol=1e-6, rtol=1e-4), name
    assert any(grad.abs().sum() > 0 for name, grad in stock.items() if "layer.2." in name)


def test_gradient_checkpointing_keeps_the_stock_layer():
    model = _tiny("bert").train()
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    assert supports_cls_only(model) is False  # backward would recompute the layer outside the block
