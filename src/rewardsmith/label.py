"""Label a dataset with a reward model: best-of-n SFT rows, chosen/rejected DPO pairs, and a report.

Input rows (JSON lines, read as a stream, so a file larger than memory works: what is held grows
with the number of prompts -- a 16-character fingerprint each, and one float per response for the
report's distributions -- not with their text):
    {"prompt": .., "responses": [..]}                  a prompt and its candidate responses
    {"prompt": .., "response": ..}  (or "completion")  one candidate per row; consecutive rows with
                                                       the same prompt form one group
    {"prompt": ..}                                     n responses are sampled from a generator
"prompt" is text or {role, content} messages ("messages" may stand for it); "id" is carried over.

The output folder:
    scores.jsonl  the run's log and only state: one line per prompt once it is done (its responses,
                  their rewards, what was dropped from it). A killed run resumes after the last
                  complete line; no response is scored twice.
    sft.jsonl     best of n per prompt, in TRL's conversational prompt-completion layout:
                  {"prompt": [messages], "completion": [{"role": "assistant", ..}], "reward": ..}
    dpo.jsonl     {"prompt": [messages], "chosen": [assistant turn], "rejected": [assistant turn],
                  "chosen_reward", "rejected_reward"}: TRL's conversational preference layout
    report.json   counts, reward distributions, how often the chosen answer is the longer one, and
                  every dropped row, response or prompt by reason
    cache.sqlite  generated responses (with a generator): a resumed run asks for none again
sft.jsonl, dpo.jsonl and report.json are written whole at the end from scores.jsonl, so a re-run
with other --pairs / --min-margin rewrites them without scoring anything.

Scores are `Scorer.score` on (conversation, response): the same as `rewardsmith score` gives.
"""

from __future__ import annotations

import json
import os
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardsmith.data.common import BadRow, as_text, row_prompt
from rewardsmith.data.record import prompt_key
from rewardsmith.data.report import DropReport
from rewardsmith.errors import RewardsmithError

if TYPE_CHECKING:
    from rewardsmith.judge.cache import Client
    from rewardsmith.score import Scorer
    from rewardsmith.synth.responses import Sampling

CHUNK = 512  # responses scored (and logged) at a time, as `rewardsmith score` does
PAIR_MODES = ("best-worst", "all")
# Chosen longer than rejected in this share of pairs or more: length, not quality, may be what the
# reward model rewards. With no length preference the share sits near one half.
LENGTH_WARNING = 0.7
LENGTH_WARNING_MIN_PAIRS = 10  # fewer pairs than this say too little to warn on


@dataclass
class Group:
    """One prompt and its candidate responses (None: to be generated)."""

    index: int  # the prompt's ordinal in the input: what a resumed run skips by
    where: str  # file:line of its first row
    id: Any
    prompt: list[dict]
    key: str  # prompt_key(prompt)
    responses: list[str] | None
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail) within this prompt


def read_groups(rows: Iterable[tuple[int, dict]], source: str, report: DropReport, *,
                generating: bool) -> Iterator[Group]:
    """Groups from `(line, row)` pairs, streamed; unusable rows go into `report` by reason."""
    closed: set[str] = set()  # prompts whose run of grouped rows has ended
    current: Group | None = None
    index = 0

    def start(group_prompt, line, row, responses) -> Group:
        nonlocal index
        index += 1
        return Group(index - 1, f"{source}:{line}", row.get("id"), group_prompt, prompt_key(group_prompt), responses)

    for line, row in rows:
        where = f"{source}:{line}"
        grouped = False  # one response per row: consecutive rows of one prompt are its group
        try:
            if "responses" in row:
                values = row["responses"]
                if not isinstance(values, list):
                    raise BadRow("wrong type", f"responses is {type(values).__name__}, expected a list")
                group_prompt = row_prompt(row, "responses")
                responses = [as_text(v, f"responses[{i}]") for i, v in enumerate(values)]
            elif "response" in row or "completion" in row:
                answer = "response" if "response" in row else "completion"
                group_prompt, responses = row_prompt(row, answer), [as_text(row[answer], answer)]
                grouped = True
            elif generating:
                group_prompt, responses = row_prompt(row, "generated responses"), None
            else:
                raise BadRow("no responses", "no 'responses', 'response' or 'completion' field (give a "
                                             "--generator to sample responses for prompt-only rows)")
        except BadRow as e:
            report.drop(e.reason, where, e.detail)
            continue
        key = prompt_key(group_prompt)
        if grouped and current is not None and current.key == key:
            current.responses.extend(responses)
            continue
        if current is not None:
            closed.add(current.key)
            yield current
            current = None
        if not grouped:
            yield start(group_prompt, line, row, responses)
        elif key in closed:
            report.drop("prompt seen again after its group ended", where,
                        "rows of one prompt must be consecutive: sort the file by prompt")
        else:
            current = start(group_prompt, line, row, responses)
    if current is not None:
        yield current


def label(rows: Iterable[tuple[int, dict]], scorer: "Scorer", out: Path, *, source: str, run: dict[str, Any],
          pairs: str = "best-worst", min_margin: float = 0.0, generator: "Client | None" = None,
          sampling: "Sampling | None" = None, progress: bool = False) -> dict[str, Any]:
    """Score every group of `rows` into `out` (resuming an earlier run there) and write the SFT and
    DPO files and the report; returns the report. `run` names what the rewards depend on (model,
    precision, generator and sampling): a folder made with other settings, or from another input
    (its prompts' fingerprints differ), is refused rather than mixed."""
    if pairs not in PAIR_MODES:
        raise RewardsmithError(f"pairs={pairs!r}: use one of {', '.join(PAIR_MODES)}")
    if (generator is None) != (sampling is None):
        raise RewardsmithError("a generator needs its sampling settings, and sampling needs a generator")
    out.mkdir(parents=True, exist_ok=True)
    _check_run(out / "label.json", run)
    log_path = out / "scores.jsonl"
    done = _logged(log_path)
    report = DropReport()
    prompts = scored_now = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="prompt", desc="labelling")
    with log_path.open("a", encoding="utf-8") as log:
        chunk: list[Group] = []
        size = 0
        for group in read_groups(rows, source, report, generating=generator is not None):
            prompts += 1
            if group.index in done:
                if done[group.index] != group.key:
                    raise RewardsmithError(
                        f"{group.where}: this prompt differs from prompt #{group.index} in {log_path}: the input "
                        "changed since that run; give another --out (or delete it) to start afresh")
            else:
                chunk.append(group)
                size += len(group.responses) if group.responses is not None else sampling.n
            if size >= CHUNK:
                scored_now += _flush(chunk, scorer, log, report, generator, sampling)
                chunk, size = [], 0
            if bar is not None:
                bar.update(1)
        if chunk:
            scored_now += _flush(chunk, scorer, log, report, generator, sampling)
    if bar is not None:
        bar.close()
    if done and max(done) >= prompts:
        raise RewardsmithError(f"{log_path} holds prompt #{max(done)} but the input has {prompts} prompts now; "
                               "give another --out (or delete it) to start afresh")
    result = _write_outputs(log_path, out, report, pairs=pairs, min_margin=min_margin)
    result["responses"]["scored_this_run"] = scored_now
    result["responses"]["from_earlier_runs"] = result["responses"]["scored"] - scored_now
    result["prompts"]["read"] = prompts
    result["truncated_this_run"] = {"prompts": scorer.stats.prompt_truncated,
                                    "responses": scorer.stats.response_truncated}
    result = {"input": source, **run, **result}
    _replace(out / "report.json", json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    return result


def _check_run(path: Path, run: dict[str, Any]) -> None:
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != run:
            changed = ", ".join(f"{k}: {before.get(k)!r} then, {run.get(k)!r} now"
                                for k in sorted(set(before) | set(run)) if before.get(k) != run.get(k))
            raise RewardsmithError(f"{path.parent} holds the labels of another run ({changed}); give another "
                                   "--out, or delete it to start afresh")
    else:
        path.write_text(json.dumps(run, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _logged(path: Path) -> dict[int, str]:
    """{prompt index: prompt key} of the prompts in the log. A last line cut short by a kill (no
    final newline) is removed first, so that prompt is done again rather than appended to."""
    if not path.exists():
        return {}
    from rewardsmith.data.files import cut_torn_last_line, iter_jsonl

    cut_torn_last_line(path)
    done = {}
    for number, row in iter_jsonl(path):
        if "index" not in row or "prompt" not in row:
            raise RewardsmithError(f"{path}:{number}: not a `rewardsmith label` log line; give another --out")
        done[row["index"]] = prompt_key(row["prompt"])
    return done


def _flush(chunk: list[Group], scorer: "Scorer", log, report: DropReport, generator: "Client | None",
           sampling: "Sampling | None") -> int:
    """Generate what is missing, score the chunk in one Scorer call, log a line per prompt; returns
    the number of responses scored. A prompt whose generation failed is not logged, so a re-run
    asks again (finished samples come from the cache); its failures count in this run's report."""
    from rewardsmith.judge.backends import Completion

    todo = [g for g in chunk if g.responses is None]
    if todo:
        from rewardsmith.synth.responses import sample

        failed = set()
        for group, results in zip(todo, sample(generator, [g.prompt for g in todo], sampling)):
            group.responses = [r.text.strip() for r in results if isinstance(r, Completion)]
            for k, result in enumerate(results):
                if not isinstance(result, Completion):
                    report.drop(f"generation failed: {result.reason.split(':')[0]}", group.where, f"sample {k}")
            if len(group.responses) < len(results):
                report.drop("prompt left for a re-run: generation failed", group.where)
                failed.add(group.index)
        chunk = [g for g in chunk if g.index not in failed]
    for group in chunk:
        _dedupe(group)
    items = [(g.prompt, r) for g in chunk for r in g.responses]
    rewards = iter(scorer.score(items))
    for g in chunk:
        line = {"index": g.index, "where": g.where, "id": g.id, "prompt": g.prompt, "responses": g.responses,
                "rewards": [next(rewards) for _ in g.responses], "dropped": g.dropped}
        log.write(json.dumps(line, ensure_ascii=False) + "\n")
    log.flush()  # the OS has every finished line even if this process is killed now
    return len(items)


def _dedupe(group: Group) -> None:
    """Empty and repeated responses out (counted); a prompt left with fewer than two keeps none."""
    kept: list[str] = []
    for k, response in enumerate(group.responses):
        if not response.strip():
            group.dropped.append(("empty response", f"response {k}"))
        elif response in kept:
            group.dropped.append(("response repeated for the same prompt", f"response {k}"))
        else:
            kept.append(response)
    if len(kept) < 2:
        group.dropped.append(("prompt with fewer than 2 distinct responses", f"{len(kept)} left"))
        kept = []
    group.responses = kept


def _write_outputs(log_path: Path, out: Path, report: DropReport, *, pairs: str, min_margin: float) -> dict[str, Any]:
    """sft.jsonl and dpo.jsonl from the log, streamed, with the statistics for the report."""
    from rewardsmith.data.files import iter_jsonl

    every, chosen, rejected, margins = array("d"), array("d"), array("d"), array("d")
    lengths: Counter = Counter()
    labelled = dpo_pairs = below_margin = scored = 0
    sft_tmp, dpo_tmp = out / "sft.jsonl.tmp", out / "dpo.jsonl.tmp"
    with sft_tmp.open("w", encoding="utf-8") as sft, dpo_tmp.open("w", encoding="utf-8") as dpo:
        for _, line in iter_jsonl(log_path):
            where = line["where"]
            for reason, detail in line["dropped"]:
                report.drop(reason, where, detail)
            responses, rewards = line["responses"], line["rewards"]
            scored += len(responses)
            every.extend(rewards)
            if not responses:
                continue
            order = sorted(range(len(rewards)), key=lambda i: -rewards[i])  # stable: ties keep input order
            best, worst = order[0], order[-1]
            if rewards[best] == rewards[worst]:
                report.drop("all responses scored equal (no preference)", where)
                continue
            labelled += 1
            extra = {"id": line["id"]} if line["id"] is not None else {}
            sft.write(json.dumps({**extra, "prompt": line["prompt"], "completion": _turn(responses[best]),
                                  "reward": rewards[best]}, ensure_ascii=False) + "\n")
            lengths["best_is_longest"] += len(responses[best]) == max(len(r) for r in responses)
            if pairs == "best-worst":
                candidates = [(best, worst)]
            else:
                candidates = [(i, j) for a, i in enumerate(order) for j in order[a + 1:] if rewards[i] > rewards[j]]
            kept = [(i, j) for i, j in candidates if rewards[i] - rewards[j] >= min_margin]
            below_margin += len(candidates) - len(kept)
            if not kept:
                report.drop("no DPO pair: reward margin below --min-margin", where,
                            f"best - worst = {rewards[best] - rewards[worst]:.4g}")
            for i, j in kept:
                dpo.write(json.dumps({**extra, "prompt": line["prompt"], "chosen": _turn(responses[i]),
                                      "rejected": _turn(responses[j]), "chosen_reward": rewards[i],
                                      "rejected_reward": rewards[j]}, ensure_ascii=False) + "\n")
                dpo_pairs += 1
                chosen.append(rewards[i])
                rejected.append(rewards[j])
                margins.append(rewards[i] - rewards[j])
                a, b = len(responses[i]), len(responses[j])
                lengths["chosen_longer" if a > b else "chosen_shorter" if a < b else "equal_length"] += 1
    sft_tmp.replace(out / "sft.jsonl")
    dpo_tmp.replace(out / "dpo.jsonl")
    decided = lengths["chosen_longer"] + lengths["chosen_shorter"]
    longer_rate = lengths["chosen_longer"] / decided if decided else None
    warnings = []
    if longer_rate is not None and longer_rate >= LENGTH_WARNING and dpo_pairs >= LENGTH_WARNING_MIN_PAIRS:
        warnings.append(f"the chosen answer is the longer one in {longer_rate:.0%} of the DPO pairs (about half "
                        "when length plays no part): the reward model may reward length; check "
                        "`rewardsmith evaluate` length diagnostics before training on these pairs")
    drops = report.to_dict()
    return {
        "prompts": {"labelled": labelled},
        "responses": {"scored": scored},
        "sft": {"file": str(out / "sft.jsonl"), "rows": labelled},
        "dpo": {"file": str(out / "dpo.jsonl"), "pairs": dpo_pairs, "mode": pairs, "min_margin": min_margin,
                "pairs_below_min_margin": below_margin},
        "rewards": {"all": _summary(every), "chosen": _summary(chosen), "rejected": _summary(rejected),
                    "margin": _summary(margins)},
        "length": {"chosen_longer": lengths["chosen_longer"], "chosen_shorter": lengths["chosen_shorter"],
                   "equal_length": lengths["equal_length"], "chosen_longer_rate": longer_rate,
                   "best_is_longest_rate": lengths["best_is_longest"] / labelled if labelled else None},
        "dropped": {"total": drops["dropped"], "by_reason": drops["dropped_by_reason"],
                    "examples": drops["drop_examples"]},
        "warnings": warnings,
    }


def _turn(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _summary(values: array) -> dict[str, float] | None:
    """n, mean, std, min, p5, p25, p50, p75, p95, max."""
    import numpy as np

    if not values:
        return None
    v = np.frombuffer(values, dtype=np.float64)
    q = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            **{f"p{p}": float(x) for p, x in zip((5, 25, 50, 75, 95), q)}, "max": float(v.max())}


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
