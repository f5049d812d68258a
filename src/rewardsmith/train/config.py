"""The typed, frozen configuration of `rewardsmith train`, loaded from YAML plus `--key value` overrides.

Validation happens once, here, and every problem is reported together in one `RewardsmithError`
(file, field, value, fix), so a user fixes a config in one pass. Nothing below this module reads
the YAML again or rewrites a user's setting.

Example (the start of configs/e5-small-cpu.yaml):

    model: multilingual-e5-small
    train_data:
      - {source: "../shared/data/hh-rlhf-test/helpful-*.test.jsonl.gz", limit: 3000}
      - {source: ../shared/data/ko-hh-rlhf-harmless}
    max_length: 128
    batch_size: 16
    lr: 1.0e-4
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardsmith.errors import RewardsmithError


@dataclass(frozen=True)
class DataSpec:
    """One source of preference pairs, handed to `rewardsmith.data.load_pairs` as is."""

    source: str
    format: str | None = None
    split: str | None = None
    preset: str | None = None
    language: str | None = None  # rows without a language get it; rows in another are dropped
    objective: str | None = None  # what the labels judged, for rows whose format does not say (data.objectives)
    labeler: str | None = None  # "human" | "llm-judge", likewise
    columns: dict[str, str] | None = None  # {our name: their column}
    limit: int | None = None  # keep at most this many pairs, a seeded random sample
    val_fraction: float | None = None  # this source's held-out share (by prompt), instead of the config's
    # Subsample so that this share of the pairs has the longer answer chosen (by characters; pairs of
    # equal length stay): judge-labelled sets choose the longer answer in 60-75% of pairs, and a model
    # learns that before anything else. None keeps the source's own share.
    chosen_longer_share: float | None = None
    # Likewise for sets where every pair is judged against one baseline model's answer
    # (label_info.baseline_model: Arena-Hard-style, e.g. ko-llm-judged's claude-3.7-sonnet, chosen in
    # 69% of its pairs): the share of pairs with the baseline's answer chosen. A model otherwise
    # learns to recognise that model's style.
    baseline_chosen_share: float | None = None
    # Each pair's margin from how strongly its labeller preferred the chosen answer, where the set
    # records it as label_info.strength (ko-llm-judged: the judges' "A>>B" is strong, "A>B" slight),
    # e.g. {strong: 1.0, slight: 0.33}: Llama-2's margins for "significantly" / "slightly" better.
    # Pairs with another or no strength keep their own margin (0 when none). Needs use_margin: true.
    margins: dict[str, float] | None = None


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapters via peft; the score head is always trained fully and saved with the adapter."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] | str = "all-linear"


@dataclass(frozen=True)
class TrainConfig:
    model: str  # embedded name, local folder or hub id: all go through init_reward_model
    train_data: tuple[DataSpec, ...]
    output_dir: str
    val_data: tuple[DataSpec, ...] = ()
    val_fraction: float = 0.05  # held out from train_data by prompt when val_data is empty
    max_length: int = 1024  # pairs whose chosen or rejected input is longer are dropped and counted
    # Prompt tokens kept where a long response would fill max_length alone (Manifest.prompt_tokens,
    # saved with the model so scoring cuts the same way); 0 keeps the response whole first.
    prompt_tokens: int = 0
    over_length: str = "drop"  # drop | truncate (the prompt on the manifest's side, then the response end; counted)
    # Optimisation. batch_size counts pairs per optimizer step over all processes;
    # gradient accumulation = batch_size / (micro_batch_size * processes).
    batch_size: int = 32
    micro_batch_size: int = 8
    lr: tuple[float, ...] = (5e-6,)  # several values = the card's sweep, best by validation accuracy
    lr_end: float = 0.0  # linear decay from lr to lr_end (the Korean card: 1e-5 -> 1e-6)
    # The freshly initialised score head (and BERT's pooler) at its own, higher rate; same schedule.
    # None = lr. A head at a backbone's lr barely moves in a short run (see docs/training.md).
    head_lr: float | None = None
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int | None = None  # stop earlier than `epochs` (optimizer steps)
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float | None = 1.0
    # Loss.
    use_margin: bool = False  # subtract each pair's `margin` (0 when a pair has none)
    center_rewards_coef: float | None = None
    # Fit the answers' length beside the reward: P(chosen wins) = sigmoid(r_c - r_r + beta * (log(1 +
    # tokens_c) - log(1 + tokens_r))), one beta per training group, fitted on length alone, then
    # trained at head_lr, and not saved. Judges and people prefer the longer answer in 55-75% of
    # pairs; with beta there to explain that, the reward is trained on what length does not explain
    # (the length covariate of AlpacaEval's length-controlled win rate; ODIN, Chen et al. 2024,
    # separates length into its own head).
    length_control: bool = False
    # Loss weight per group "language/objective[/labeler]" (fnmatch patterns, e.g. "ko/harmlessness": 0.5,
    # "*/helpfulness/llm-judge": 2): a pair's weight is its first matching pattern's, else 1.
    group_weights: dict[str, float] = field(default_factory=dict)
    # Model.
    precision: str = "auto"  # auto (bf16 where the hardware has it) | bf16 | fp32
    freeze_embeddings: bool = False  # the word-embedding table; most of a small model's optimizer cost
    freeze_layers: int = 0  # also freeze the bottom N transformer layers: no backward pass through them
    disable_dropout: bool = True  # as TRL's RewardConfig: dropout adds noise to r_c - r_r
    lora: LoraSpec | None = None
    group_by_length: bool = True
    # Decoders: each pair's shared conversation runs once, then its two responses against that
    # pass's key/value cache (models/prefix.py): the same loss and gradients, fewer tokens.
    share_prefix: bool = True
    # Bookkeeping.
    seed: int = 42
    log_every: int = 10
    eval_every: int = 0  # steps; 0 = only at the end
    checkpoint_every: int = 0  # steps; 0 = only at the end
    keep_checkpoints: int = 2

    @property
    def is_sweep(self) -> bool:
        return len(self.lr) > 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_PRECISIONS = ("auto", "bf16", "fp32")


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML file (or none), apply `overrides` (dotted keys, e.g. {"lora.r": 8}), validate.

    Raises RewardsmithError listing every problem found, each with the file and the field.
    """
    import yaml

    where = str(path) if path else "<command line>"
    raw: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise RewardsmithError(f"{p}: config file not found; pass --config with a YAML file (see configs/)")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise RewardsmithError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise RewardsmithError(f"{p}: the top level must be a mapping of settings, got {type(raw).__name__}")
    for key, value in (overrides or {}).items():
        target = raw
        *parents, leaf = key.replace("-", "_").split(".")
        for name in parents:
            if not isinstance(target.get(name), dict):
                target[name] = {}  # e.g. `lora: true` plus --lora.r 8
            target = target[name]
        target[leaf] = value
    return _validate(raw, where)


def parse_overrides(tokens: list[str]) -> dict[str, Any]:
    """`["--lr", "1e-5", "--lora.r", "8"]` -> {"lr": 1e-05, "lora.r": 8}; values parsed as YAML scalars."""
    import yaml

    out: dict[str, Any] = {}
    errors = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) < 3:
            errors.append(f"{tok!r}: overrides are `--key value` pairs (e.g. --max_length 256)")
            i += 1
            continue
        key, eq, inline = tok[2:].partition("=")
        if eq:
            value_text = inline
            i += 1
        elif i + 1 < len(tokens):
            value_text = tokens[i + 1]
            i += 2
        else:
            errors.append(f"--{key}: missing a value")
            break
        try:
            out[key] = yaml.safe_load(value_text)
        except yaml.YAMLError:
            out[key] = value_text
    if errors:
        raise RewardsmithError("; ".join(errors))
    return out


def _validate(raw: dict[str, Any], where: str) -> TrainConfig:
    errors: list[str] = []
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}

    def err(name: str, msg: str) -> None:
        errors.append(f"{where}: {name}: {msg}")

    for name in raw:
        if name not in fields:
            close = [f for f in fields if f.startswith(name[:3])]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            err(name, f"unknown setting{hint}")
    for name in ("model", "train_data", "output_dir"):
        if raw.get(name) in (None, "", []):
            err(name, "required; set it in the config file or with --" + name)

    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw or name in ("train_data", "val_data", "lr", "lora", "adam_betas", "group_weights"):
            continue
        v = raw[name]
        default = f.default
        kind = type(default) if default is not dataclasses.MISSING and default is not None else None
        if name in ("model", "output_dir", "precision", "over_length"):
            kind = str
        elif name in ("max_steps",):
            kind = int
        elif name in ("center_rewards_coef", "max_grad_norm", "head_lr"):
            kind = float
        if kind is float and isinstance(v, str):
            v = _float_or_same(v)  # PyYAML reads `5e-6` (no dot) as a string
        if v is None and default is None:
            values[name] = None
        elif kind is float and isinstance(v, int | float) and not isinstance(v, bool):
            values[name] = float(v)
        elif kind is not None and isinstance(v, kind) and not (kind is int and isinstance(v, bool)):
            values[name] = v
        else:
            err(name, f"expected {kind.__name__ if kind else 'a value'}, got {v!r}")

    values["train_data"] = _data_specs(raw.get("train_data"), "train_data", err)
    values["val_data"] = _data_specs(raw.get("val_data") or [], "val_data", err)
    values["lr"] = _lrs(raw.get("lr", list(fields["lr"].default)), err)
    if "adam_betas" in raw:
        b = raw["adam_betas"]
        if isinstance(b, list | tuple) and len(b) == 2 and all(isinstance(x, int | float) and 0 <= x < 1 for x in b):
            values["adam_betas"] = (float(b[0]), float(b[1]))
        else:
            err("adam_betas", f"expected two numbers in [0, 1), e.g. [0.9, 0.999]; got {b!r}")
    if raw.get("lora") not in (None, False):
        values["lora"] = _lora(raw["lora"], err)
    if raw.get("group_weights") is not None:
        values["group_weights"] = _group_weights(raw["group_weights"], err)

    # Ranges and relations between fields.
    v = {**{n: f.default for n, f in fields.items() if f.default is not dataclasses.MISSING}, **values}
    for name in ("max_length", "batch_size", "micro_batch_size", "keep_checkpoints"):
        if isinstance(v.get(name), int) and v[name] < 1:
            err(name, f"must be >= 1, got {v[name]}")
    for name in ("log_every", "eval_every", "checkpoint_every", "freeze_layers"):
        if isinstance(v.get(name), int) and v[name] < 0:
            err(name, f"must be >= 0, got {v[name]}")
    if isinstance(v.get("batch_size"), int) and isinstance(v.get("micro_batch_size"), int) and v["micro_batch_size"] >= 1:
        if v["batch_size"] % v["micro_batch_size"]:
            err("batch_size", f"{v['batch_size']} is not a multiple of micro_batch_size {v['micro_batch_size']}; "
                "gradient accumulation needs equal micro-batches")
    if not 0 <= v.get("val_fraction", 0) < 1:
        err("val_fraction", f"must be in [0, 1), got {v['val_fraction']}")
    if not v.get("val_data") and v.get("val_fraction") == 0:
        err("val_fraction", "0 with no val_data leaves nothing to validate on; set val_fraction (e.g. 0.05) or val_data")
    if not 0 <= v.get("warmup_ratio", 0) < 1:
        err("warmup_ratio", f"must be in [0, 1), got {v['warmup_ratio']}")
    if isinstance(v.get("epochs"), float) and v["epochs"] <= 0:
        err("epochs", f"must be > 0, got {v['epochs']}")
    if v.get("max_steps") is not None and isinstance(v["max_steps"], int) and v["max_steps"] < 1:
        err("max_steps", f"must be >= 1 or null, got {v['max_steps']}")
    if v.get("precision") not in _PRECISIONS:
        err("precision", f"{v.get('precision')!r} is not one of {', '.join(_PRECISIONS)}")
    if isinstance(v.get("lr_end"), float) and v["lr"] and v["lr_end"] > min(v["lr"]):
        err("lr_end", f"{v['lr_end']} is above lr {min(v['lr'])}; the schedule decays from lr to lr_end")
    if isinstance(v.get("head_lr"), float) and not 0 < v["head_lr"] < 1:
        err("head_lr", f"{v['head_lr']} is outside (0, 1); e.g. 1e-3, or leave it out to use lr")
    if v.get("over_length") not in ("drop", "truncate"):
        err("over_length", f"{v.get('over_length')!r} is not one of drop, truncate")
    if v.get("lora") and (v.get("freeze_embeddings") or v.get("freeze_layers")):
        err("freeze_embeddings", "LoRA already freezes every base weight; drop freeze_embeddings/freeze_layers or lora")
    if v.get("freeze_layers") and not v.get("freeze_embeddings"):
        err("freeze_layers", "freezing layers above a trainable embedding table saves nothing; "
            "set freeze_embeddings: true as well")

    if not v.get("use_margin"):
        for i, spec in enumerate(v.get("train_data") or ()):
            if spec.margins:
                err(f"train_data[{i}].margins", "set, but use_margin is false, so the loss would ignore them; "
                    "set use_margin: true (or drop margins)")
    if errors:
        raise RewardsmithError(f"{len(errors)} problem(s) in the training config:\n  " + "\n  ".join(errors))
    return TrainConfig(**values)


def _float_or_same(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _data_specs(raw: Any, name: str, err) -> tuple[DataSpec, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str | dict):
        raw = [raw]
    if not isinstance(raw, list):
        err(name, f"expected a list of sources, got {raw!r}")
        return ()
    keys = {f.name for f in dataclasses.fields(DataSpec)}
    specs = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {"source": item}
        if not isinstance(item, dict) or not isinstance(item.get("source"), str):
            err(f"{name}[{i}]", f"expected a path/id or {{source: ..., preset: ..., limit: ...}}, got {item!r}")
            continue
        unknown = set(item) - keys
        if unknown:
            err(f"{name}[{i}]", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(keys)}")
            continue
        limit = item.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            err(f"{name}[{i}].limit", f"expected a positive integer, got {limit!r}")
            continue
        margins = item.get("margins")
        if margins is not None and not (isinstance(margins, dict) and margins and all(
                isinstance(k, str) and isinstance(m, int | float) and not isinstance(m, bool) and 0 <= m < float("inf")
                for k, m in margins.items())):
            err(f"{name}[{i}].margins", f"expected a mapping of label_info.strength values to margins >= 0, "
                f"e.g. {{strong: 1.0, slight: 0.33}}; got {margins!r}")
            continue
        if margins is not None:
            item = {**item, "margins": {k: float(m) for k, m in margins.items()}}
        bad = [key for key in ("chosen_longer_share", "baseline_chosen_share", "val_fraction") if item.get(key) is not None
               and (isinstance(item[key], bool) or not isinstance(item[key], int | float) or not 0 < item[key] < 1)]
        if bad:
            err(f"{name}[{i}].{bad[0]}", f"expected a share in (0, 1), e.g. 0.5; got {item[bad[0]]!r}")
            continue
        try:
            from rewardsmith.data.objectives import check_labeler, check_objective

            check_objective(item.get("objective"), f"{name}[{i}].objective")
            check_labeler(item.get("labeler"), f"{name}[{i}].labeler")
        except RewardsmithError as e:
            err(f"{name}[{i}]", str(e))
            continue
        specs.append(DataSpec(**item))
    return tuple(specs)


def _group_weights(raw: Any, err) -> dict[str, float]:
    from rewardsmith.data.objectives import OBJECTIVES

    if not isinstance(raw, dict):
        err("group_weights", f"expected a mapping of group -> weight, e.g. {{'ko/harmlessness': 0.5}}; got {raw!r}")
        return {}
    out = {}
    for key, weight in raw.items():
        parts = str(key).split("/")
        if not 2 <= len(parts) <= 3 or (parts[1] not in (*OBJECTIVES, "*", "unknown")):
            err(f"group_weights.{key}", f"expected LANGUAGE/OBJECTIVE[/LABELER] with an objective among "
                f"{', '.join(OBJECTIVES)} (or *), e.g. ko/helpfulness or */harmlessness/human")
        elif isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            err(f"group_weights.{key}", f"expected a weight >= 0, got {weight!r}")
        else:
            out[str(key)] = float(weight)
    return out


def _lrs(raw: Any, err) -> tuple[float, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list | tuple) else [raw]
    out = []
    for x in items:
        try:
            value = float(x)
        except (TypeError, ValueError):
            err("lr", f"{x!r} is not a number; use e.g. 5e-6 or a sweep 8e-7,1e-6,2.5e-6,5e-6")
            continue
        if not 0 < value < 1:
            err("lr", f"{value} is outside (0, 1)")
        out.append(value)
    if not items:
        err("lr", "no learning rate given")
    return tuple(out)


def _lora(raw: Any, err) -> LoraSpec | None:
    if raw is True:
        return LoraSpec()
    if not isinstance(raw, dict):
        err("lora", f"expected true or a mapping {{r, alpha, dropout, target_modules}}, got {raw!r}")
        return None
    keys = {f.name for f in dataclasses.fields(LoraSpec)}
    unknown = set(raw) - keys
    if unknown:
        err("lora", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(keys)}")
        return None
    targets = raw.get("target_modules", LoraSpec.target_modules)
    if isinstance(targets, list):
        targets = tuple(targets)
    spec = LoraSpec(**{**raw, "target_modules": targets})
    if not isinstance(spec.r, int) or spec.r < 1:
        err("lora.r", f"expected a positive integer, got {spec.r!r}")
    return spec
