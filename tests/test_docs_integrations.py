"""docs/integrations.md: every Python block runs, with tiny models in place of out/rm and the policy,
on the CPU (the trainers' configs get use_cpu=True, bf16=False)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rewardsmith.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"
POLICY = "HuggingFaceTB/SmolLM2-135M-Instruct"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_its_examples():
    code = "\n".join(blocks())
    assert len(blocks()) == 3 and "RewardFunction(" in code and "compute_score_batch(" in code and "DPOTrainer(" in code


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_decoder_dir):
    """out/rm, a policy and labelled/ (what the label command on the page writes)."""
    import tiny_models

    from rewardsmith.models import init_reward_model, save_reward_model

    work = tmp_path_factory.mktemp("docs-integrations")
    save_reward_model(init_reward_model(tiny_decoder_dir, max_length=128), work / "out" / "rm", score_stats=(0.0, 1.0))
    tiny_models.tiny_policy(work / "policy")
    answers = work / "answers.jsonl"
    answers.write_text("".join(json.dumps({"prompt": p, "responses": ["9分ゆでます。", "知りません。", "沸騰したお湯で9分。"]},
                                          ensure_ascii=False) + "\n" for p in ("卵のゆで方は？", "How do I boil an egg?")))
    assert main(["label", str(work / "out" / "rm"), str(answers), "--out", str(work / "labelled")]) == 0
    return work


@pytest.mark.parametrize("index", range(3))
def test_python_block_runs(index, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    code = blocks()[index].replace(POLICY, str(workdir / "policy"))
    for config in ("GRPOConfig(", "SFTConfig(", "DPOConfig("):  # trainers' defaults want a GPU (bf16)
        code = code.replace(config, f"{config}use_cpu=True, bf16=False, ")
    code = re.sub(r"^trainer\.train\(\).*$", "", code, flags=re.M)  # constructing the trainer checks the call
    exec(compile(code, f"{DOC.name} block {index}", "exec"), {"__name__": "__docs__"})
