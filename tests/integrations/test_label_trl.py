"""`rewardsmith label` on real answers (ja-llm-judged: ELYZA-tasks-100 benchmark runs, several
models' answers per question), and TRL's SFTTrainer / DPOTrainer taking the files as they are."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rewardsmith.cli import main

pytestmark = pytest.mark.shared_data

PROMPTS, PER_PROMPT = 6, 4


def grouped_answers(shared_data: Path, out: Path) -> Path:
    """Rows {"id", "prompt", "response"}, one per answer, grouped by prompt: the first PROMPTS
    questions with PER_PROMPT distinct answers among the pairs' chosen and rejected sides."""
    answers: dict[str, list[str]] = {}
    prompts: dict[str, list] = {}
    with gzip.open(shared_data / "ja-llm-judged" / "elyza-tasks-100.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            key = json.dumps(row["prompt"], ensure_ascii=False)
            prompts[key] = row["prompt"]
            seen = answers.setdefault(key, [])
            seen.extend(a for a in (row["chosen"], row["rejected"]) if a not in seen)
    chosen = [k for k, v in answers.items() if len(v) >= PER_PROMPT][:PROMPTS]
    assert len(chosen) == PROMPTS
    with out.open("w", encoding="utf-8") as f:
        for n, key in enumerate(chosen):
            for k, answer in enumerate(answers[key][:PER_PROMPT]):
                f.write(json.dumps({"id": f"elyza-{n}-{k}", "prompt": prompts[key], "response": answer},
                                   ensure_ascii=False) + "\n")
    return out


@pytest.fixture(scope="module")
def labelled(shared_data, decoder_rm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("label-elyza")
    source = grouped_answers(shared_data, tmp / "answers.jsonl")
    assert main(["label", str(decoder_rm), str(source), "--out", str(tmp / "out"), "--pairs", "all"]) == 0
    return tmp / "out"


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    import tiny_models

    return tiny_models.tiny_policy(tmp_path_factory.mktemp("policy"))


def test_report_on_real_answers(labelled):
    report = json.loads((labelled / "report.json").read_text())
    assert report["prompts"] == {"read": PROMPTS, "labelled": PROMPTS}
    assert report["responses"]["scored"] == PROMPTS * PER_PROMPT
    assert report["dpo"]["pairs"] == PROMPTS * PER_PROMPT * (PER_PROMPT - 1) // 2
    assert report["length"]["chosen_longer"] + report["length"]["chosen_shorter"] + \
        report["length"]["equal_length"] == report["dpo"]["pairs"]
    assert report["dropped"]["total"] == 0


def test_sft_trainer_loads_the_sft_file(labelled, policy, tmp_path):
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    dataset = load_dataset("json", data_files=str(labelled / "sft.jsonl"), split="train")
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, max_steps=1, per_device_train_batch_size=2,
                     max_length=256, report_to="none", save_strategy="no", dataloader_num_workers=0)
    trainer = SFTTrainer(model=str(policy), args=args, train_dataset=dataset)
    labels = trainer.train_dataset[0]["labels"]
    assert -100 in labels and any(x != -100 for x in labels)  # trained on the chosen completion, not the prompt
    assert trainer.train().training_loss > 0


def test_dpo_trainer_loads_the_dpo_file(labelled, policy, tmp_path):
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer

    dataset = load_dataset("json", data_files=str(labelled / "dpo.jsonl"), split="train")
    assert {"chosen_reward", "rejected_reward"} <= set(dataset.column_names)
    args = DPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, max_steps=1, per_device_train_batch_size=2,
                     max_length=256, report_to="none", save_strategy="no", dataloader_num_workers=0)
    trainer = DPOTrainer(model=str(policy), args=args, train_dataset=dataset)
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)
    assert trainer.train().training_loss > 0
