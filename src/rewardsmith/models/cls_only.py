"""An encoder's last layer computed for the one row its head reads: [CLS].

BERT's pooler and RoBERTa/XLM-R's classification head read only position 0 of the last layer's
output. That layer still needs the keys and values of every token, but its query projection,
attention output, residual + LayerNorm and feed-forward block are needed for row 0 alone: for
the other T - 1 rows they are dead work, 10 of the last layer's 12 matmul units (Q, K, V, O are
one each, the feed-forward eight) plus all but one row of its attention scores. On a 12-layer
model that is ~7% of the FLOPs (the measured speed-up is in docs/benchmarks.md).

`cls_only_last_layer(model)` is a context manager that swaps the last layer's forward for one
that returns (B, 1, H), only for the model families whose structure it knows (BERT, RoBERTa,
XLM-R sequence classifiers; eager or SDPA attention); anything else runs as it is. The Scorer
uses it around its forward passes, and training around `RewardModule.forward` (the backward pass
then skips the same rows: gradients equal the stock model's, tested); both put [CLS] at column 0
(`reward_forward` moves rows to right padding). Outside the context the model is the stock one,
so `output_hidden_states` and any other use see every row.
"""

from __future__ import annotations

import contextlib
import sys
import types

# Sequence classifiers whose head reads position 0 of the last hidden state, with BERT's layer
# structure (attention.self.query/key/value, attention.output, feed_forward_chunk).
SUPPORTED = {"BertForSequenceClassification", "RobertaForSequenceClassification",
             "XLMRobertaForSequenceClassification"}


def _cls_only_forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None,
                      encoder_attention_mask=None, past_key_values=None, **kwargs):
    """BertLayer.forward for query row 0 only: keys and values from every row."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    attention = self.attention.self
    batch, length, _ = hidden_states.shape
    head = attention.attention_head_size
    cls = hidden_states[:, :1]
    query = attention.query(cls).view(batch, 1, -1, head).transpose(1, 2)
    key = attention.key(hidden_states).view(batch, length, -1, head).transpose(1, 2)
    value = attention.value(hidden_states).view(batch, length, -1, head).transpose(1, 2)
    if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] > 1:
        attention_mask = attention_mask[:, :, :1]  # (B, 1, T, T) -> the [CLS] query's row
    # The model family's own eager function, as its attention module would pick it.
    eager = sys.modules[type(attention).__module__].eager_attention_forward
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager)
    dropout = attention.dropout.p if attention.training else 0.0  # as BertSelfAttention does
    context, _ = interface(attention, query, key, value, attention_mask, dropout=dropout,
                           scaling=attention.scaling, **kwargs)
    attended = self.attention.output(context.reshape(batch, 1, -1), cls)
    return self.feed_forward_chunk(attended)


def supports_cls_only(model) -> bool:
    """True when `cls_only_last_layer` would change `model` (see SUPPORTED)."""
    config = model.config
    if type(model).__name__ not in SUPPORTED or config.is_decoder or config.add_cross_attention:
        return False
    if config._attn_implementation not in ("sdpa", "eager"):
        return False  # flash/flex kernels take other mask layouts: not rewritten here
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return False
    encoder = model.base_model.encoder
    layer = encoder.layer[-1]
    # Backward would recompute the layer outside the block, with the stock forward. The flag sits
    # on the layer (transformers' GradientCheckpointingLayer) or, in older releases, the encoder.
    if getattr(layer, "gradient_checkpointing", False) or getattr(encoder, "gradient_checkpointing", False):
        return False
    return all(hasattr(layer.attention.self, name) for name in ("query", "key", "value", "scaling")) \
        and hasattr(layer, "feed_forward_chunk")


@contextlib.contextmanager
def cls_only_last_layer(model):
    """Within the block, `model`'s last layer computes only row 0 (see the module docstring).
    Re-entrant and thread-tolerant: only the block that installed the swap removes it, and a
    forward that runs after removal is the stock (slower, equal) one."""
    if not supports_cls_only(model):
        yield False
        return
    layer = model.base_model.encoder.layer[-1]
    if "forward" in layer.__dict__:  # installed by an enclosing block (or someone else): keep it
        yield True
        return
    # An instance attribute shadows the class's forward; the state dict and config are untouched.
    # A fresh bound method per block costs torch.compile no recompile (checked with TORCH_LOGS).
    layer.__dict__["forward"] = types.MethodType(_cls_only_forward, layer)
    try:
        yield True
    finally:
        layer.__dict__.pop("forward", None)
