"""`train(config)`: preference pairs -> a reward model folder. Plain PyTorch, read top to bottom.

    setup    data (load, hold out by prompt, encode, count what length drops), model (init,
             freeze / LoRA, no dropout), AdamW + linear warm-up/decay, accelerate
    loop     per optimizer step: `accum` micro-batches of (2B, T) on each process, BT loss,
             clip, step; log loss / accuracy / tokens/s / padding
    eval     validation accuracy and loss every `eval_every` steps and at the end
    save     a checkpoint every `checkpoint_every` steps and at the end (model, optimizer,
             scheduler, RNG of every process, step); the final model via `save_reward_model`

`accelerate` does device placement, bf16 autocast and multi-process gradient averaging; the loop
itself is ordinary PyTorch, so DeepSpeed/FSDP come from `accelerate launch --config_file ...`
(docs/training.md). Determinism: the data order is a function of (seed, epoch) alone and each
step uses the same micro-batches whatever the number of processes, so a resumed run and a
2-process run reproduce a single uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import logging
import math
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rewardsmith import allocator
from rewardsmith.errors import RewardsmithError, is_disk_full
from rewardsmith.models.loading import is_causal_decoder
from rewardsmith.train.config import TrainConfig
from rewardsmith.train import is_main_process
from rewardsmith.train.data import (EncodedPair, balance, chose_baseline, chose_longer, encode_pairs,
                                    group_weights, length_sorted, log_length_ratio, make_batch, micro_batches, sample,
                                    split_by_prompt, split_lengths, strength_margins)

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    validation: dict  # accuracy, loss, n, ci95 and the same per language
    tokens_per_second: float  # the pairs' real (non-pad) tokens per second of training (a shared prefix counted twice)
    padding_fraction: float  # share of computed training tokens that were padding
    train_seconds: float
    encode_report: dict


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train one reward model as `config` says; returns the final validation metrics.

    resume=True continues from the newest checkpoint in `config.output_dir/checkpoints` and ends
    with the same weights as an uninterrupted run -- also after a kill at any point, a checkpoint
    write included (tests/train/test_faults.py). Raises RewardsmithError for user problems (no data
    left, a resume with a different config, a full disk, ...).
    """
    try:
        return _train(config, resume=resume, progress=progress)
    except OSError as e:
        if not is_disk_full(e):
            raise
        out = Path(config.output_dir)
        ckpt = latest_checkpoint(out)
        kept = f"the last complete checkpoint, {ckpt}, is intact" if ckpt else "no checkpoint was complete yet"
        raise RewardsmithError(
            f"{e.filename or out}: no space left on the device while training into {out} ({e.strerror}); {kept}. "
            "Free space (or set output_dir on a larger disk) and rerun with --resume") from None


def _train(config: TrainConfig, *, resume: bool, progress: bool) -> TrainResult:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from rewardsmith.loss import bradley_terry_loss
    from rewardsmith.models import init_reward_model

    if config.is_sweep:
        raise RewardsmithError(f"lr has {len(config.lr)} values; run the sweep with rewardsmith.train.sweep.sweep")
    lr = config.lr[0]
    out = Path(config.output_dir)

    # ---------------------------------------------------------------- setup
    # cpu=True on machines without an accelerator makes several processes use gloo (MULTI_CPU);
    # without it accelerate would run each launched process alone.
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # launched multi-process runs keep theirs
        fresh_accelerate_state()
    accelerator = Accelerator(mixed_precision=_mixed_precision(config.precision), cpu=not _has_accelerator())
    main = accelerator.is_main_process
    world = accelerator.num_processes
    per_step = config.batch_size // config.micro_batch_size  # micro-batches per optimizer step
    if per_step % world:
        raise RewardsmithError(
            f"batch_size {config.batch_size} / micro_batch_size {config.micro_batch_size} = {per_step} micro-batches "
            f"per step cannot be shared by {world} processes; make it a multiple of {world}")
    accum = per_step // world
    set_seed(config.seed)
    _check_resume(out, config, resume, write=main)  # on every process, so all stop together

    rm = init_reward_model(config.model, max_length=config.max_length, prompt_tokens=config.prompt_tokens)
    tokenizer, model, manifest = rm.tokenizer, rm.model, rm.manifest
    train_pairs, val_pairs, report, val_report = load_data(config, tokenizer, manifest)
    if main:
        log.info("train pairs: %s", report.summary())
        log.info("validation pairs: %s", val_report.summary())
    if len(train_pairs) < config.batch_size:
        raise RewardsmithError(
            f"only {len(train_pairs)} training pairs left after the length filter ({report.summary()}); "
            f"need at least batch_size={config.batch_size}: add data, raise max_length or set over_length: truncate")
    if not val_pairs:
        raise RewardsmithError("no validation pairs: add val_data or raise val_fraction")

    steps_per_epoch = len(train_pairs) // config.micro_batch_size // per_step
    total_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    warmup = int(config.warmup_ratio * total_steps)

    model.float()  # fp32 master weights; bf16 comes from autocast
    _prepare_for_training(model, config)
    if config.lora:
        model = _apply_lora(model, config)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # config.length_control: one length coefficient per training group (language/objective/labeler:
    # Korean judges reward length far more than English crowdworkers), each started where length
    # alone explains that group's labels best, so the reward learns the rest from its first step
    # (a scalar at head_lr would take ~1,000 steps to get there, learning length into the reward
    # meanwhile).
    module = RewardModule(model, sorted({p.group for p in train_pairs}) if config.length_control else ())
    for group, g in module.length_index.items():
        beta = fit_length_coef([log_length_ratio(p) for p in train_pairs if p.group == group])
        module.length_coef.data[g] = beta
        if main:
            log.info("length control: %s starts at beta = %+.3f (length alone: the answer twice as long "
                     "wins %.0f%% of the time)", group, beta, 100 / (1 + math.exp(-beta * math.log(2))))
    optimizer = build_optimizer(module, config, lr)
    # Every group decays to the same fraction lr_end / lr of its own rate.
    end_ratio = config.lr_end / lr
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _linear_schedule(s, warmup, total_steps, end_ratio))
    # The scheduler is stepped by hand, not prepared: a prepared scheduler steps once per process.
    model, optimizer = accelerator.prepare(module, optimizer)
    accelerator.register_for_checkpointing(scheduler)

    step = 0
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is not None:
            accelerator.load_state(str(ckpt))
            step = json.loads((ckpt / STATE_FILE).read_text())["step"]
            if main:
                log.info("resumed from %s (step %d of %d)", ckpt, step, total_steps)
    if main:  # rows past the checkpoint (all rows of a run killed before its first one) are logged again
        _truncate_metrics(out / "metrics.jsonl", step)

    writer = _Metrics(out, enabled=main)
    if main:
        n_trainable = sum(p.numel() for _, p in trainable)
        n_total = sum(p.numel() for p in model.parameters())
        log.info("training %s: %d steps, %d pairs/step (%d processes x %d micro-batches x %d pairs), "
                 "%.1fM of %.1fM parameters trainable, precision %s", config.model, total_steps, config.batch_size,
                 world, accum, config.micro_batch_size, n_trainable / 1e6, n_total / 1e6,
                 accelerator.mixed_precision)
        log.info("allocator: %s", allocator.active())

    # ---------------------------------------------------------------- loop
    # Right padding everywhere: encoders read [CLS] at 0; decoders pool the last real token by mask.
    pad_id, padding_side = rm.pad_id, "right"
    # Decoders: each pair's shared conversation runs once (make_batch, RewardModule.forward).
    share = config.share_prefix and is_causal_decoder(rm.model)
    sharding = shards_parameters(model) if share else None
    if sharding:
        share = False
        if main:
            log.warning("share_prefix is off under %s: it frees a layer's gathered weights after that layer's "
                        "backward, before the prefix pass's keys and values (read through the cache) reach "
                        "them; each pair runs whole instead", sharding)
    elif share and main:
        log.info("share_prefix: each pair's shared conversation runs once, its responses against its cache")
    # Shared layouts pad a prefix and a suffix apart, so they are grouped by both lengths.
    lengths = [split_lengths(p) if share else p.length for p in train_pairs]
    epoch_batches: dict[int, list[list[int]]] = {}
    tokens = computed = padded = 0
    train_time = 0.0
    val = None
    bar = _progress(total_steps, step, enabled=main and progress)
    model.train()
    while step < total_steps:
        t0 = time.perf_counter()
        epoch, index = divmod(step, steps_per_epoch)
        if epoch not in epoch_batches:
            epoch_batches = {epoch: micro_batches(lengths, config.micro_batch_size, config.seed, epoch,
                                                  config.group_by_length)}
        step_batches = epoch_batches[epoch][index * per_step:(index + 1) * per_step]
        mine = step_batches[accelerator.process_index::world]  # this process's `accum` micro-batches
        stats = torch.zeros(5)  # loss sum, correct, pairs, real tokens, real tokens run — summed over processes
        step_padded = 0
        for j, indices in enumerate(mine):
            batch = make_batch([train_pairs[i] for i in indices], pad_id, padding_side, share_prefix=share,
                               length_index=module.length_index)
            sync = j == len(mine) - 1  # gradients are all-reduced once, after the last micro-batch
            with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                rewards = batch_rewards(model, batch, accelerator.device)  # (2B,) chosen, then rejected
                loss = bradley_terry_loss(rewards, batch["margin"] if config.use_margin else None,
                                          config.center_rewards_coef,
                                          batch["weight"] if config.group_weights else None,
                                          module.length_term(batch))
                accelerator.backward(loss / accum)  # mean over the step's pairs: micro-batches are equal
            chosen, rejected = rewards.detach().reshape(2, -1)
            stats += torch.tensor([loss.item() * len(indices), (chosen > rejected).sum().item(), len(indices),
                                   batch["tokens"], batch["computed"]])
            step_padded += batch["padded"]
        if config.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        stats = accelerator.reduce(torch.cat([stats, torch.tensor([float(step_padded)])]).to(accelerator.device),
                                   reduction="sum").cpu()
        elapsed = time.perf_counter() - t0
        train_time += elapsed
        tokens += int(stats[3])
        computed += int(stats[4])
        padded += int(stats[5])
        row = {"step": step, "epoch": step / steps_per_epoch, "loss": float(stats[0] / stats[2]),
               **{f"length_coef/{group}": beta for group, beta in module.length_coefs().items()},
               "accuracy": float(stats[1] / stats[2]), "lr": scheduler.get_last_lr()[0],
               "tokens_per_second": float(stats[3] / elapsed), "padding_fraction": float(1 - stats[4] / stats[5])}
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.2f}",
                            tok_s=f"{row['tokens_per_second']:.0f}")
        if config.log_every and step % config.log_every == 0 or step == total_steps:
            writer.write("train", row)

        # ------------------------------------------------------------ eval and checkpoint
        if config.eval_every and step % config.eval_every == 0 and step < total_steps:
            val = evaluate_pairs(model, val_pairs, accelerator, pad_id, padding_side, config.micro_batch_size * 2,
                                 share_prefix=share)
            writer.write("val", {"step": step, **_flat(val)})
            model.train()
        if config.checkpoint_every and step % config.checkpoint_every == 0 or step == total_steps:
            _save_checkpoint(accelerator, out, step, config.keep_checkpoints)
    if bar:
        bar.close()

    # ---------------------------------------------------------------- final eval and save
    val, val_rewards = evaluate_pairs(model, val_pairs, accelerator, pad_id, padding_side,
                                      config.micro_batch_size * 2, return_rewards=True, share_prefix=share)
    if config.length_control:
        # What the length term explained: the reward itself, saved and validated, leaves it out.
        val["length_coef"] = module.length_coefs()
    writer.write("val", {"step": step, **_flat(val)})
    writer.close()
    result = TrainResult(out, step, val, tokens / train_time if train_time else 0.0,
                         1 - computed / padded if padded else 0.0, train_time,
                         {"train": report.to_dict(), "validation": val_report.to_dict()})
    accelerator.wait_for_everyone()
    if main:
        final = accelerator.unwrap_model(model).model
        r = torch.tensor(val_rewards)
        _save_final(final, tokenizer, manifest, out, config, (r.mean().item(), r.std().item()))
        (out / "train_result.json").write_text(json.dumps(
            {**dataclasses.asdict(result), "output_dir": str(out)}, indent=2, ensure_ascii=False) + "\n")
    accelerator.wait_for_everyone()
    return result


def fit_length_coef(x: list[float], l2: float = 1.0, iterations: int = 25) -> float:
    """The beta maximising sum_i log sigmoid(beta * x_i) - l2 * beta^2 / 2 (Newton's method): a
    Bradley-Terry fit on length alone. The small ridge keeps it finite where the longer answer
    always wins."""
    t = torch.tensor(x, dtype=torch.float64)
    beta = 0.0
    for _ in range(iterations):
        p = torch.sigmoid(beta * t)
        grad = float((t * (1 - p)).sum()) - l2 * beta
        hess = -float((t * t * p * (1 - p)).sum()) - l2
        beta -= grad / hess
    return beta


def build_optimizer(model, config: TrainConfig, lr: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters: the backbone at `lr`, the reward head at
    `config.head_lr` (default `lr`); biases and norms are not decayed."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for is_head, group_lr in ((False, lr), (True, config.head_lr or lr)):
        params = [(n, p) for n, p in trainable if is_head_parameter(n) == is_head]
        groups += [{"params": [p for n, p in params if p.ndim >= 2], "weight_decay": config.weight_decay, "lr": group_lr},
                   {"params": [p for n, p in params if p.ndim < 2], "weight_decay": 0.0, "lr": group_lr}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=config.adam_betas, eps=config.adam_eps)


# Decoders' score, encoders' pooler + classifier, and RewardModule's length term: all start untrained.
HEAD_MODULES = ("score", "classifier", "pooler", "length_coef")


def is_head_parameter(name: str) -> bool:
    """True for the reward head's parameters, which start untrained: `score.weight`,
    `classifier.out_proj.bias`, `bert.pooler.dense.weight`, and peft's copies
    (`...score.modules_to_save.default.weight`)."""
    return any(part in HEAD_MODULES for part in name.split("."))


class RewardModule(torch.nn.Module):
    """(input_ids, attention_mask) -> (B,) float32 rewards through `models.reward_forward`.

    One module whose forward is the whole reward computation, so DDP / FSDP / DeepSpeed wrap
    it and see every parameter used (reward_forward reads the backbone and head separately).
    """

    def __init__(self, model, length_groups: Sequence[str] = ()):
        super().__init__()
        self.model = model  # a *ForSequenceClassification, or a peft model around one
        # config.length_control: the loss's length coefficient per training group (group name ->
        # its index), trained here and never saved with the model.
        self.length_index = {group: g for g, group in enumerate(length_groups)}
        self.length_coef = torch.nn.Parameter(torch.zeros(len(length_groups))) if length_groups else None

    def length_coefs(self) -> dict[str, float]:
        """group -> its length coefficient now ({} without length control)."""
        return {group: float(self.length_coef[g].detach()) for group, g in self.length_index.items()}

    def length_term(self, batch: dict) -> torch.Tensor | None:
        """beta[group] * (log(1 + tokens_c) - log(1 + tokens_r)) per pair, the offset of the BT
        logit (make_batch's "length_diff" and "length_group"); None without length control."""
        if self.length_coef is None:
            return None
        device = self.length_coef.device
        return self.length_coef[batch["length_group"].to(device)] * batch["length_diff"].to(device)

    def forward(self, input_ids, attention_mask, prefix_ids=None, prefix_mask=None):
        """prefix_ids / prefix_mask (B, P), left-padded: a decoder's pairs as make_batch(share_prefix=
        True) lays them out, each pair's shared start run once and input_ids (2B, S) after it."""
        from rewardsmith.models import reward_forward
        from rewardsmith.models.cls_only import cls_only_last_layer
        from rewardsmith.models.prefix import run_prefixes, run_suffixes

        inner = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        if prefix_ids is not None:
            cache, lengths = run_prefixes(inner.base_model, prefix_ids, prefix_mask)
            owners = torch.arange(len(prefix_ids), device=prefix_ids.device).repeat(2)  # chosen, then rejected
            return run_suffixes(inner, cache, prefix_mask, lengths, owners, input_ids, attention_mask)
        # Encoders: the last layer's rows other than [CLS] feed nothing the loss reads, so neither
        # pass computes them (~7% of a 12-layer encoder's FLOPs); decoders run as they are.
        with cls_only_last_layer(inner):
            return reward_forward(inner, input_ids, attention_mask)


def batch_rewards(model, batch: dict, device) -> torch.Tensor:
    """(2B,) rewards of a make_batch batch through a (wrapped) RewardModule, in either layout."""
    inputs = ("input_ids", "attention_mask", "prefix_ids", "prefix_mask")
    return model(**{k: batch[k].to(device) for k in inputs if k in batch})


# -------------------------------------------------------------------- evaluation

def evaluate_pairs(model, pairs: list[EncodedPair], accelerator, pad_id: int, padding_side: str,
                   batch_size: int, return_rewards: bool = False, share_prefix: bool = False):
    """Pairwise accuracy and mean BT loss of `model` on `pairs`, overall and per language.

    Each process scores every world-th pair (length-sorted batches), then all results are
    gathered, so every process returns the same numbers. A tie (r_c == r_r) counts as wrong.
    Returns the metrics dict, and with return_rewards=True also all 2N rewards.
    share_prefix: make_batch's shared-prefix layout where it saves tokens (causal decoders only).
    """
    from accelerate.utils import gather_object

    model.eval()
    mine = list(range(accelerator.process_index, len(pairs), accelerator.num_processes))
    # The shared layout pads prefixes and responses apart, so it is sorted by both.
    lengths = {i: split_lengths(pairs[i]) if share_prefix else pairs[i].length for i in mine}
    mine = length_sorted(mine, lengths, batch_size)
    results = []
    with torch.inference_mode():
        for s in range(0, len(mine), batch_size):
            idx = mine[s:s + batch_size]
            batch = make_batch([pairs[i] for i in idx], pad_id, padding_side, share_prefix=share_prefix)
            with accelerator.autocast():
                rewards = batch_rewards(model, batch, accelerator.device)
            chosen, rejected = rewards.float().reshape(2, -1).cpu()
            results += [(i, float(c), float(r)) for i, c, r in zip(idx, chosen, rejected)]
    results = sorted(gather_object(results))
    chosen = torch.tensor([c for _, c, _ in results])
    rejected = torch.tensor([r for _, _, r in results])
    languages = [pairs[i].language for i, _, _ in results]
    groups = [pairs[i].group for i, _, _ in results]
    lengths = torch.tensor([pairs[i].response_tokens for i, _, _ in results], dtype=torch.float64).reshape(-1, 2)
    # Intervals resample whole prompts: held-out pairs that answer one question are not independent.
    prompts = np.array([pairs[i].prompt_key or f"pair {i}" for i, _, _ in results], dtype=object)
    metrics = _accuracy(chosen, rejected, prompts)
    metrics["by_language"] = {
        lang: _accuracy(chosen[sel], rejected[sel], prompts[sel.numpy()])
        for lang in sorted(set(languages))
        for sel in [torch.tensor([x == lang for x in languages])]
    }
    # Per language/objective/labeler, beside "longer wins" / "shorter wins" on the same pairs: a
    # pooled accuracy hides a model that learnt one group's rule and applies it to another.
    metrics["by_group"] = {
        group: {**_accuracy(chosen[sel], rejected[sel], prompts[sel.numpy()]),
                **_versus_length(chosen[sel], rejected[sel], lengths[sel], prompts[sel.numpy()])}
        for group in sorted(set(groups))
        for sel in [torch.tensor([x == group for x in groups], dtype=torch.bool)]
    }
    # Sets judged against one baseline model (Arena-Hard style) put its answer on one side of every
    # pair: a model can score by recognising that model's style. The two sides, apart, tell.
    won = (chosen > rejected).numpy()
    group_of = np.array(groups, dtype=object)
    side = np.array([pairs[i].baseline_chosen for i, _, _ in results], dtype=object)  # True / False / None
    for group, m in metrics["by_group"].items():
        chose, lost = (group_of == group) & (side == True), (group_of == group) & (side == False)  # noqa: E712
        if chose.any() or lost.any():
            m["baseline_side"] = {name: {"accuracy": float(won[sel].mean()) if sel.any() else float("nan"),
                                         "n": int(sel.sum())}
                                  for name, sel in (("baseline_chosen", chose), ("baseline_rejected", lost))}
    if return_rewards:
        return metrics, chosen.tolist() + rejected.tolist()
    return metrics


def _accuracy(chosen, rejected, prompts) -> dict:
    """Accuracy (a tie is wrong), its 95% bootstrap interval over whole prompts, and the BT loss."""
    from rewardsmith.loss import bradley_terry_loss
    from rewardsmith.metrics import accuracy, outcomes_from_scores

    n = len(chosen)
    cell, _ = accuracy(outcomes_from_scores(chosen.numpy(), rejected.numpy()), clusters=prompts)
    loss = float(bradley_terry_loss(torch.cat([chosen, rejected]))) if n else float("nan")
    return {"accuracy": cell.accuracy, "ci95": (cell.low, cell.high), "n": n, "prompts": cell.prompts or 0,
            "ties": cell.ties, "loss": loss}


def _versus_length(chosen, rejected, lengths, prompts) -> dict:
    """The length rules on the same pairs, and the model's accuracy where the chosen answer is the
    longer / the shorter one: above 0.5 on the second is what a length rule cannot do."""
    from rewardsmith.metrics import length_bias, outcomes_from_scores, versus_length

    outcomes = outcomes_from_scores(chosen.numpy(), rejected.numpy())
    lc, lr = lengths[:, 0].numpy(), lengths[:, 1].numpy()
    return {"vs_length": versus_length(outcomes, lc, lr, clusters=prompts),
            "length_bias": length_bias(outcomes, lc, lr).to_dict()}


def _flat(metrics: dict) -> dict:
    row = {k: v for k, v in metrics.items() if k in ("accuracy", "loss", "n")}
    for group, beta in metrics.get("length_coef", {}).items():
        row[f"length_coef/{group}"] = beta
    for lang, m in metrics.get("by_language", {}).items():
        row[f"accuracy_{lang}"] = m["accuracy"]
    for group, m in metrics.get("by_group", {}).items():
        row[f"accuracy_{group}"] = m["accuracy"]
    return row


# -------------------------------------------------------------------- setup helpers

def shards_parameters(model) -> str | None:
    """The name of the wrapper ("FSDP", "DeepSpeed ZeRO-3") when a prepared model's weights are
    gathered for each module call and freed again after its backward, else None.

    Such wrappers cannot train the shared-prefix layout: a decoder layer runs twice (prefix, then
    responses), and the prefix's keys and values reach its projections' backward through the
    cache, not through the layer's output, so after the layer's post-backward has freed the
    gathered weights (FSDP2 on 2 gloo processes: "setStorage ... out of bounds for storage of
    size 0"). DDP keeps whole weights on every process and trains it as one process does.
    """
    from torch.distributed import fsdp

    wrappers = tuple(getattr(fsdp, name) for name in ("FSDPModule", "FullyShardedDataParallel")
                     if hasattr(fsdp, name))
    if any(isinstance(m, wrappers) for m in model.modules()):
        return "FSDP"
    if any(hasattr(p, "ds_id") for p in model.parameters()):  # ZeRO-3 partitions each parameter
        return "DeepSpeed ZeRO-3"
    return None


def fresh_accelerate_state() -> None:
    """Forget accelerate's process-wide state. It is a singleton that refuses a second precision,
    and a bare Accelerator() takes the first one's; a sweep, a notebook or a test suite calls
    train() several times in one process, so each run starts clean."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _has_accelerator() -> bool:
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or torch.backends.mps.is_available() or bool(xpu and xpu.is_available())


def _mixed_precision(precision: str) -> str:
    """"auto" -> "bf16" where the hardware computes bf16 natively (CUDA, or a CPU with AMX /
    AVX512-BF16, ~3x faster than fp32 there), else "no"."""
    if precision == "fp32":
        return "no"
    from rewardsmith.models.precision import bf16_supported, warn_if_bf16_is_emulated

    if precision == "bf16":
        if not _has_accelerator():  # training then runs on the CPU
            warn_if_bf16_is_emulated(torch.device("cpu"))
        return "bf16"

    return "bf16" if bf16_supported(torch.device("cuda" if torch.cuda.is_available() else "cpu")) else "no"


def load_data(config: TrainConfig, tokenizer, manifest):
    """(train pairs, validation pairs, their EncodeReports): load and sample each source, hold out by
    prompt (unless val_data is given), length-balance the training side, encode.

    Balancing (`chosen_longer_share`) touches training pairs only: validation keeps each source's
    own share of longer chosen answers, the distribution a model is used on."""
    from rewardsmith.data import load_pairs

    def load(spec):
        result = load_pairs(spec.source, format=spec.format, split=spec.split, preset=spec.preset,
                            language=spec.language, columns=spec.columns, objective=spec.objective,
                            labeler=spec.labeler)
        pairs = sample(result.pairs, spec.limit, config.seed)
        if spec.margins:
            pairs, seen = strength_margins(pairs, spec.margins, spec.source)
            if is_main_process():
                log.info("%s: margins from label_info.strength: %s", spec.source, ", ".join(
                    f"{s} {spec.margins[s]:g} on {n}" if s in spec.margins else f"{s} (not listed: its own) on {n}"
                    for s, n in seen.most_common()))
        return pairs

    def balanced(spec, pairs):
        for share, side, what in ((spec.baseline_chosen_share, chose_baseline, "the baseline model's answer"),
                                  (spec.chosen_longer_share, chose_longer, "the longer answer")):
            if share is None:
                continue
            kept = balance(pairs, side, share, config.seed)
            if is_main_process():
                log.info("%s: %d of %d training pairs kept so that %.0f%% of them choose %s",
                         spec.source, len(kept), len(pairs), 100 * share, what)
            pairs = kept
        return pairs

    train_raw, val_raw = [], []
    for spec in config.train_data:
        pairs = load(spec)
        if not config.val_data:
            fraction = config.val_fraction if spec.val_fraction is None else spec.val_fraction
            pairs, held = split_by_prompt(pairs, fraction, config.seed)
            val_raw += held
        train_raw += balanced(spec, pairs)
    for spec in config.val_data:
        val_raw += load(spec)
    check_mixture(train_raw)
    weight_of = group_weights(config.group_weights)
    train_pairs, report = encode_pairs(train_raw, tokenizer, manifest, config.over_length, weight_of)
    val_pairs, val_report = encode_pairs(val_raw, tokenizer, manifest, config.over_length)
    return train_pairs, val_pairs, report, val_report


def check_mixture(pairs) -> Counter:
    """Log the training mixture by language / objective / labeler, and warn where it will teach the
    wrong rule: a language with no helpfulness pairs learns whatever its pairs reward (harmlessness
    pairs alone teach "refuse": measured on Korean), and pairs of unknown objective cannot be
    reported apart. Returns the mixture."""
    from rewardsmith.data.objectives import group_name

    mixture = Counter(group_name(p) for p in pairs)
    if is_main_process():
        log.info("training mixture (language/objective/labeler): %s",
                 ", ".join(f"{g} {n}" for g, n in sorted(mixture.items())))
        for lang in sorted({g.split("/")[0] for g in mixture}):
            mine = {g.split("/")[1] for g in mixture if g.split("/")[0] == lang}
            if not mine & {"helpfulness", "general"} and mine - {"unknown"}:
                log.warning("%s has no helpfulness pairs (only %s): the model learns to rank %s answers by "
                            "that rule alone, e.g. preferring refusals to ordinary requests; add %s helpfulness "
                            "pairs or set each source's `objective:`", lang, ", ".join(sorted(mine)), lang, lang)
        unknown = sum(n for g, n in mixture.items() if g.split("/")[1] == "unknown")
        if unknown:
            log.warning("%d training pairs have no objective: set `objective:` on their data entries "
                        "(helpfulness, harmlessness, correctness, general) so validation can report them apart",
                        unknown)
    return mixture


def _prepare_for_training(model, config: TrainConfig) -> None:
    if config.freeze_embeddings:
        model.get_input_embeddings().requires_grad_(False)
    if config.freeze_layers:
        # Position/type embeddings and the bottom layers too: autograd then records nothing below
        # the first trainable layer, so the backward pass stops there.
        for module in model.base_model.modules():
            if "embed" in type(module).__name__.lower():
                module.requires_grad_(False)
        layers = _layers(model)
        if config.freeze_layers > len(layers):
            raise RewardsmithError(f"freeze_layers={config.freeze_layers} but {config.model} has {len(layers)} layers")
        for layer in layers[:config.freeze_layers]:
            layer.requires_grad_(False)
    if config.disable_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0


def _layers(model) -> torch.nn.ModuleList:
    """The stack of transformer layers (BERT's encoder.layer, Llama's layers, ...): the longest ModuleList."""
    stacks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not stacks:
        raise RewardsmithError(f"{type(model).__name__}: no layer stack found; freeze_layers needs one")
    return max(stacks, key=len)


def _apply_lora(model, config: TrainConfig):
    from peft import LoraConfig, TaskType, get_peft_model

    spec = config.lora
    targets = list(spec.target_modules) if isinstance(spec.target_modules, tuple) else spec.target_modules
    # TaskType.SEQ_CLS adds the score head ("score" / "classifier") to modules_to_save: it is
    # trained in full and saved with the adapter, since a fresh head has nothing to adapt.
    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                      target_modules=targets)
    return get_peft_model(model, lora)


def _linear_schedule(step: int, warmup: int, total: int, end_ratio: float) -> float:
    """Multiplier of the peak lr: 0 -> 1 over `warmup` steps, then 1 -> end_ratio at `total`."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 1.0 - (1.0 - end_ratio) * min(1.0, progress)


# -------------------------------------------------------------------- checkpoints and output

def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint (`checkpoints/step-N`), or None."""
    root = Path(out) / CHECKPOINTS
    done = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file() and p.name[5:].isdigit()]
    return max(done, key=lambda p: int(p.name[5:]), default=None)


def _save_checkpoint(accelerator, out: Path, step: int, keep: int) -> None:
    """Write `checkpoints/step-N` atomically: into a temporary folder, flushed to the disk, then
    renamed. A kill (or power loss) at any moment leaves the previous checkpoints whole and at
    most a `tmp-step-N` that nothing reads; a full disk removes the partial folder and raises."""
    root = out / CHECKPOINTS
    tmp = root / f"tmp-step-{step}"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    try:
        with _full_disk_as_oserror(tmp):
            accelerator.save_state(str(tmp))  # model, optimizer, scheduler, RNG of every process
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps({"step": step}) + "\n")
            _fsync_tree(tmp)  # the rename must not reach the disk before the files do
    except OSError:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # frees what the partial checkpoint took
        raise
    if accelerator.is_main_process:
        final = root / f"step-{step}"
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync_tree(root, files=False)
        done = sorted((p for p in root.glob("step-*") if p.name[5:].isdigit()), key=lambda p: int(p.name[5:]))
        for old in done[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


@contextlib.contextmanager
def _full_disk_as_oserror(folder: Path):
    """safetensors and torch.save report a full disk with their own exception types (see
    errors.is_disk_full); raise it as OSError(ENOSPC) naming `folder`, like any other write."""
    try:
        yield
    except OSError:
        raise
    except Exception as e:
        if not is_disk_full(e, folder.parent if not folder.exists() else folder):
            raise
        raise OSError(errno.ENOSPC, f"No space left on device ({type(e).__name__}: {str(e)[:120]})",
                      str(folder)) from e


def _fsync_tree(folder: Path, files: bool = True) -> None:
    """fsync the files in `folder` (if `files`) and the folder itself (its entries: a rename)."""
    for path in [*(p for p in folder.iterdir() if p.is_file()), folder] if files else [folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_resume(out: Path, config: TrainConfig, resume: bool, write: bool) -> None:
    """Record the config; on resume, refuse a different one (the result would match neither run)."""
    path = out / "train_config.json"
    current = json.loads(json.dumps(config.to_dict()))
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        # A run recorded before a setting existed ran with that setting's default.
        for f in dataclasses.fields(TrainConfig):
            if f.name not in saved and f.default is not dataclasses.MISSING:
                saved[f.name] = json.loads(json.dumps(f.default))
        diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if diff:
            raise RewardsmithError(
                f"{path}: --resume with a different config ({', '.join(diff)} changed); "
                "resume with the original settings or start a new output_dir")
    elif not resume and latest_checkpoint(out) is not None:
        raise RewardsmithError(
            f"{out} already holds checkpoints; pass --resume to continue, or choose a new output_dir")
    if write:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=2) + "\n")


def _save_final(model, tokenizer, manifest, out: Path, config: TrainConfig, score_stats) -> None:
    """The output folder: an ordinary HF reward model + manifest (score statistics from the
    held-out pairs); with LoRA also `adapter/` (LoRA weights and the fully trained score head)."""
    from rewardsmith.models import RewardModel, save_reward_model

    with _full_disk_as_oserror(out):
        if config.lora:
            model.save_pretrained(out / "adapter")
            model = model.merge_and_unload()  # the merged export needs no peft to load
        save_reward_model(RewardModel(model, tokenizer, manifest), out, score_stats=score_stats)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after the checkpoint we resume from; they will be logged again. A row cut
    short by a kill or a full disk (only the last can be) is dropped too. Rewritten by rename, so
    a kill here loses nothing."""
    if not path.is_file():
        return
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            log.warning("%s: dropped a row cut short by an interrupted write: %.60r", path, line)
            continue
        if row["step"] <= step:
            rows.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


class _Metrics:
    """metrics.jsonl (one JSON object per row, `split` = train | val) and TensorBoard events."""

    def __init__(self, out: Path, enabled: bool):
        self.enabled = enabled
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.file = open(out / "metrics.jsonl", "a", encoding="utf-8")
            self.tb = SummaryWriter(str(out / "tensorboard"))

    def write(self, split: str, row: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps({"split": split, **row}) + "\n")
        self.file.flush()
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float):
                self.tb.add_scalar(f"{split}/{key}", value, row["step"])

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.tb.close()


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)
