"""Stage 1: instructions — from shipped seeds, files or preference data, plus optional synthesis.

An `Instruction` is one user request with a language. Sources:
  * the shipped seeds (`synth/seeds/{ja,ko,en}.jsonl`, hand-written, ~15 per language);
  * JSONL files of `{"instruction": ..., "language": ...}` (or `"prompt"`, `"id"` optional);
  * any preference data `rewardsmith.data.load_pairs` reads (the last user turn of single-turn pairs).
Synthesis asks an LLM for one new instruction per request, shown three seeds (Self-Instruct,
arXiv:2212.10560). De-duplication normalises (NFKC, case, spacing, punctuation) and drops
near-copies by character-trigram Jaccard similarity, which needs no word segmenter for ja/ko.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from rewardsmith.data import textfile
from rewardsmith.data.files import parse_line
from rewardsmith.errors import RewardsmithError
from rewardsmith.judge import prompts
from rewardsmith.judge.backends import Completion, Request
from rewardsmith.judge.cache import Client

NEAR_DUPLICATE = 0.6  # trigram Jaccard at or above this: the same request reworded ("... an egg" vs "... an egg quickly?")
_SCRIPT = {  # a synthesised instruction must be written in its language's script
    "ja": re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]"),
    "ko": re.compile(r"[\uac00-\ud7a3]"),
    "en": re.compile(r"[A-Za-z]"),
}


@dataclass(frozen=True, slots=True)
class Instruction:
    id: str
    language: str
    instruction: str
    source: str  # "seed", a file name, or "synth:<model>"

    def to_dict(self) -> dict:
        return asdict(self)


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[\W_]+", " ", text)  # punctuation and spacing differences do not make a new request
    return " ".join(text.split())


def _trigrams(text: str) -> set[str]:
    t = normalize(text)
    return {t[i:i + 3] for i in range(max(1, len(t) - 2))}


def dedupe(instructions: Iterable[Instruction]) -> tuple[list[Instruction], int]:
    """Keep the first of each group of (near-)identical instructions per language; return (kept, dropped).

    Pairwise trigram comparison is O(n^2) per language: fine for thousands of instructions; a
    MinHash index would be the next step for hundreds of thousands.
    """
    kept: list[Instruction] = []
    seen_exact: set[tuple[str, str]] = set()
    grams: dict[str, list[set[str]]] = {}
    dropped = 0
    for ins in instructions:
        key = (ins.language, normalize(ins.instruction))
        g = _trigrams(ins.instruction)
        same_lang = grams.setdefault(ins.language, [])
        if key in seen_exact or any(len(g & h) / len(g | h) >= NEAR_DUPLICATE for h in same_lang):
            dropped += 1
            continue
        seen_exact.add(key)
        same_lang.append(g)
        kept.append(ins)
    return kept, dropped


def seed_instructions(languages: Sequence[str]) -> list[Instruction]:
    """The hand-written seeds shipped with rewardsmith, in the order of `languages`."""
    out = []
    folder = resources.files("rewardsmith.synth") / "seeds"
    for lang in languages:
        path = folder / f"{lang}.jsonl"
        if not path.is_file():
            raise RewardsmithError(f"no shipped seed instructions for language {lang!r}; use one of ja, ko, en "
                                   "or pass your own with --instructions FILE.jsonl")
        with resources.as_file(path) as file:
            out += _read_jsonl(file, f"seed-{lang}.jsonl", "seed", lang)
    return out


def _read_jsonl(path: Path, name: str, source: str, default_language: str | None) -> list[Instruction]:
    """Instructions of a JSONL file, opened as every data file is (data.textfile: gzip, BOM, CRLF,
    lines split at "\n" only, so a U+2028 inside an instruction does not split it)."""
    out = []
    for n, line in textfile.iter_lines(path):
        if not line.strip():
            continue
        row, error = parse_line(line)
        if error or not isinstance(row, dict):
            raise RewardsmithError(f"{name} line {n}: {'invalid JSON (' + error + ')' if error else 'not an object'}"
                                   '; expected {"instruction": "...", "language": "ja"}')
        text_ = row.get("instruction") or row.get("prompt")
        lang = row.get("language") or default_language
        if not isinstance(text_, str) or not text_.strip() or not isinstance(lang, str) or not lang:
            raise RewardsmithError(f"{name} line {n}: needs a non-empty string field 'instruction' (or 'prompt') "
                                   "and a 'language' (e.g. \"ja\")")
        out.append(Instruction(str(row.get("id") or f"{source}/{lang}/{n}"), lang, text_.strip(), source))
    return out


def load_instructions(sources: Sequence[str], languages: Sequence[str]) -> list[Instruction]:
    """Instructions from JSONL files or preference data sources, restricted to `languages`."""
    out: list[Instruction] = []
    for source in sources:
        path = Path(source)
        if path.name.lower().endswith((".jsonl", ".jsonl.gz")) and path.is_file():
            rows = _read_jsonl(path, str(path), path.name.split(".")[0], None)
        else:
            from rewardsmith.data import load_pairs  # lazy: any format the data layer reads

            pairs = load_pairs(source).pairs
            rows = [Instruction(f"{p.source}/{p.id}", p.language or "en", p.prompt[-1]["content"], p.source)
                    for p in pairs if p.is_single_turn]
        out += [r for r in rows if r.language in languages]
    return out


@dataclass
class SynthesisReport:
    requested: int = 0
    accepted: int = 0
    failed: int = 0
    rejected: dict[str, int] | None = None


def _clean(reply: str) -> str:
    line = next((ln for ln in reply.splitlines() if ln.strip()), "")
    line = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line)  # "4. Write..." -> "Write..."
    return line.strip().strip("\"'「」“”").strip()


def synthesize(client: Client, seeds: Sequence[Instruction], per_language: int, languages: Sequence[str],
               max_tokens: int = 96) -> tuple[list[Instruction], SynthesisReport]:
    """`per_language` new instructions per language from the seeds; near-duplicates are left to `dedupe`.

    Request k of a language shows 3 seeds chosen by Random(f"{lang}/{k}") and samples with
    seed k, so a re-run asks exactly the same requests and is answered from the cache.
    """
    report = SynthesisReport(rejected=Counter())
    jobs: list[tuple[str, int, Request]] = []
    for lang in languages:
        pool = [s.instruction for s in seeds if s.language == lang]
        if not pool or lang not in prompts.NEW_INSTRUCTION:
            continue
        for k in range(per_language):
            examples = random.Random(f"{lang}/{k}").sample(pool, min(3, len(pool)))
            text = prompts.NEW_INSTRUCTION[lang].format(examples="\n".join(f"{i}. {e}" for i, e in enumerate(examples, 1)))
            jobs.append((lang, k, Request.chat([{"role": "user", "content": text}], max_tokens=max_tokens,
                                               temperature=1.0, top_p=0.95, seed=k)))
    results = client.run([j[2] for j in jobs])
    out = []
    for (lang, k, _), result in zip(jobs, results):
        report.requested += 1
        if not isinstance(result, Completion):
            report.failed += 1
            continue
        text = _clean(result.text)
        if not 8 <= len(text) <= 500:
            report.rejected["length"] += 1
        elif lang in _SCRIPT and not _SCRIPT[lang].search(text):
            report.rejected["wrong script"] += 1
        else:
            report.accepted += 1
            out.append(Instruction(f"synth/{lang}/{k}", lang, text, f"synth:{client.model_id}"))
    report.rejected = dict(report.rejected)
    return out, report
