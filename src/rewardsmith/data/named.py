"""Readers for named datasets, each in its published shape (see ../shared/DATASETS.md).

Each is `read(row, ctx, report) -> Iterator[PreferencePair]` raising `BadRow` for an unusable row,
except SQuARe, whose pairs span rows (`read_square` takes all rows of a file). Ties are kept with
`label_info["tie"]` set so the `drop_ties` filter can count them; nothing here filters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

from rewardsmith.data.common import (
    BadRow, RowContext, as_messages, as_text, check_prompt, normalize_language,
)
from rewardsmith.data.record import Message, PreferencePair
from rewardsmith.data.report import DropReport


def _int(value: Any, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRow("wrong type", f"{field} is {value!r}, expected an integer") from None


# --- nvidia/HelpSteer3 (preference) -------------------------------------------------------------

def read_helpsteer3(row: dict[str, Any], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """overall_preference -3..3: negative = response1 better, positive = response2, 0 = tie (kept, marked)."""
    pref = _int(row["overall_preference"], "overall_preference")
    if not -3 <= pref <= 3:
        raise BadRow("value out of range", f"overall_preference is {pref}, expected -3..3")
    prompt = check_prompt(as_messages(row["context"], "context"), "context")
    r1, r2 = as_text(row["response1"], "response1"), as_text(row["response2"], "response2")
    chosen, rejected = (r2, r1) if pref > 0 else (r1, r2)
    yield PreferencePair(
        id=ctx.make_id(row),
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        margin=float(abs(pref)),
        language=normalize_language(row.get("language")) or ctx.language,
        source="helpsteer3",
        subset=row.get("__split__") or ctx.subset,
        label_info={
            "overall_preference": pref,
            "tie": pref == 0,
            "domain": row.get("domain"),
            "language": row.get("language"),
            "individual_preference": row.get("individual_preference"),
        },
    )


# --- chatbot arena (llm-jp, lmsys) and lmsys MT-Bench human judgments ---------------------------

_WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


def read_arena(row: dict[str, Any], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """winner model_a | model_b | tie | tie (bothbad); ties kept and marked.

    `turn` is the number of user turns (arena) or the turn judged (MT-Bench, 1 or 2): each
    conversation is cut after that many assistant answers, so an MT-Bench turn-1 judgment compares
    the first answers. Multi-turn arena conversations differ before the last turn (each model
    answered the earlier turns itself): the rejected side keeps its own conversation.
    """
    winner = str(row["winner"]).strip()
    if winner not in _WINNERS:
        raise BadRow("unknown winner", f"winner is {winner!r}, expected one of {_WINNERS}")
    a, b = as_messages(row["conversation_a"], "conversation_a"), as_messages(row["conversation_b"], "conversation_b")
    turn = _int(row["turn"], "turn") if row.get("turn") not in (None, "") else None
    if turn is not None:
        a, b = _cut_after_answers(a, turn, "conversation_a"), _cut_after_answers(b, turn, "conversation_b")
    for conv, name in ((a, "conversation_a"), (b, "conversation_b")):
        if conv[-1]["role"] != "assistant":
            raise BadRow("response is not an assistant turn", f"{name} ends with a {conv[-1]['role']} turn")
    first, second = (b, a) if winner == "model_b" else (a, b)
    prompt = check_prompt(first[:-1])
    rejected_prompt = None if second[:-1] == first[:-1] else check_prompt(second[:-1], "rejected_prompt")
    chosen_model, rejected_model = (row.get("model_b"), row.get("model_a")) if winner == "model_b" else (
        row.get("model_a"), row.get("model_b"))
    info = {k: row.get(k) for k in ("winner", "model_a", "model_b", "judge", "turn", "question_id", "tstamp")
            if row.get(k) is not None}
    info.update(tie=winner.startswith("tie"), chosen_model=chosen_model, rejected_model=rejected_model)
    yield PreferencePair(
        id=ctx.make_id(row) if row.get("id") not in (None, "") else "/".join(
            str(x) for x in (ctx.source, row.get("question_id", ctx.index), row.get("judge", ""), turn or "")
            if x != "") + f"/{ctx.index}",
        prompt=prompt,
        chosen=first[-1]["content"],
        rejected=second[-1]["content"],
        language=normalize_language(row.get("language")) or ctx.language,
        source=ctx.source,
        subset=row.get("__split__") or ctx.subset,
        label_info=info,
        rejected_prompt=rejected_prompt,
    )


def _cut_after_answers(conv: list[Message], n: int, field: str) -> list[Message]:
    seen = 0
    for i, m in enumerate(conv):
        if m["role"] == "assistant":
            seen += 1
            if seen == n:
                return conv[: i + 1]
    raise BadRow("turn out of range", f"{field} has {seen} assistant answers, turn is {n}")


# --- heegyu/hh-rlhf-ko ----------------------------------------------------------------------------

def _from_value(m: Any, field: str) -> Message:
    if not isinstance(m, dict) or "value" not in m:
        raise BadRow("bad message", f"{field} is not a {{from, value}} message")
    role = {"human": "user", "gpt": "assistant"}.get(str(m.get("from")).lower())
    if role is None:
        raise BadRow("bad message", f"{field}.from is {m.get('from')!r}, expected human or gpt")
    return {"role": role, "content": str(m["value"])}


def read_hh_rlhf_ko(row: dict[str, Any], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """context [{from: human|gpt, value}] + instruction (the last user turn) -> prompt; chosen/rejected {from, value}."""
    context = row["context"] or []
    if not isinstance(context, list):
        raise BadRow("wrong type", f"context is {type(context).__name__}, expected a list")
    prompt = [_from_value(m, f"context[{i}]") for i, m in enumerate(context)]
    prompt.append(_from_value(row["instruction"], "instruction"))
    chosen, rejected = _from_value(row["chosen"], "chosen"), _from_value(row["rejected"], "rejected")
    subset = row.get("source") or row.get("__split__") or ctx.subset
    yield PreferencePair(
        id=ctx.make_id(row),
        prompt=check_prompt(prompt, "instruction"),
        chosen=chosen["content"],
        rejected=rejected["content"],
        language="ko",
        source="hh-rlhf-ko",
        subset=str(subset) if subset else None,
        label_info={k: row[k] for k in ("source",) if k in row},
    )


# --- PKU-SafeRLHF and heegyu/PKU-SafeRLHF-ko ------------------------------------------------------

def read_pku_saferlhf(row: dict[str, Any], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """Two pairs per row, subsets "better" (helpfulness) and "safer" (harmlessness), as the set defines.

    The Korean set names its columns prompt_k / response_{0,1}_ko; the English one prompt / response_{0,1}.
    """
    ko = "response_0_ko" in row
    prompt = as_messages(row["prompt_k" if ko else "prompt"], "prompt")
    responses = [as_text(row[f"response_{i}_ko" if ko else f"response_{i}"], f"response_{i}") for i in (0, 1)]
    info = {k: row.get(k) for k in ("better_response_id", "safer_response_id", "is_response_0_safe",
                                    "is_response_1_safe") if k in row}
    for variant in ("better", "safer"):
        best = _int(row[f"{variant}_response_id"], f"{variant}_response_id")
        if best not in (0, 1):
            raise BadRow("value out of range", f"{variant}_response_id is {best}, expected 0 or 1")
        yield PreferencePair(
            id=f"{ctx.make_id(row)}/{variant}",
            prompt=check_prompt(prompt),
            chosen=responses[best],
            rejected=responses[1 - best],
            language="ko" if ko else (ctx.language or "en"),
            source="pku-saferlhf-ko" if ko else "pku-saferlhf",
            subset=variant,
            label_info={**info, "split": row.get("__split__") or ctx.subset},
        )


# --- naver-ai SQuARe (acceptable vs not-acceptable responses) -------------------------------------

def read_square(rows: list[tuple[str, dict[str, Any]]], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """Every (acceptable, not acceptable) pair of responses to one question is a pair.

    `acceptable?` is the majority of 3 crowdworkers; with raw annotations (the *_annotations.json
    file, merged in by the loader) label_info says how many workers called each side acceptable and
    whether the pair is unanimous (all 3 agree on both sides).
    """
    by_question: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for where, row in rows:
        try:
            if "acceptable?" not in row:  # this reader takes all rows at once: the loader's KeyError catch is not around it
                raise BadRow("missing field", "no column 'acceptable?'")
            label = _int(row["acceptable?"], "acceptable?")
            if label not in (0, 1):
                raise BadRow("value out of range", f"acceptable? is {label}, expected 0 or 1")
            if not isinstance(row.get("question"), str) or not isinstance(row.get("response"), str):
                raise BadRow("wrong type", "question and response must be text")
        except BadRow as e:
            report.drop(e.reason, where, e.detail)
            continue
        by_question.setdefault(row["question"], []).append((where, row))
    for q_index, (question, items) in enumerate(by_question.items()):
        good = [r for _, r in items if int(r["acceptable?"]) == 1]
        bad = [r for _, r in items if int(r["acceptable?"]) == 0]
        if not good or not bad:
            report.flag("SQuARe question without both an acceptable and a non-acceptable response (no pair)",
                        items[0][0], f"{len(good)} acceptable, {len(bad)} not")
            continue
        for g in good:
            for b in bad:
                votes_g, votes_b = _square_votes(g), _square_votes(b)
                info: dict[str, Any] = {
                    "question_en": g.get("question_en"),
                    "chosen_en": g.get("response_en"),
                    "rejected_en": b.get("response_en"),
                    "question_category": g.get("question_category"),
                    "rejected_category": b.get("category"),
                }
                if votes_g is not None and votes_b is not None:
                    info.update(chosen_acceptable_votes=votes_g[0], rejected_acceptable_votes=votes_b[0],
                                unanimous=votes_g == (votes_g[1], votes_g[1]) and votes_b[0] == 0)
                yield PreferencePair(
                    id=f"square/{_short_hash(question)}/{_short_hash(g['response'])}-{_short_hash(b['response'])}",
                    prompt=[{"role": "user", "content": question}],
                    chosen=g["response"],
                    rejected=b["response"],
                    language="ko",
                    source="square",
                    subset=ctx.subset,
                    label_info=info,
                )


def _square_votes(row: dict[str, Any]) -> tuple[int, int] | None:
    """(workers saying acceptable, workers) from raw_annotations, or None without them."""
    raw = row.get("raw_annotations")
    if not isinstance(raw, dict):
        return None
    votes = raw.get("Q2: Acceptable or Non-acceptable") or []
    yes = sum(1 for v in votes if str(v.get("acceptable?", "")).strip().lower() == "acceptable")
    return yes, len(votes)


def _short_hash(text: str) -> str:
    # surrogatepass: a lone surrogate must not crash the reader; the loader drops such pairs (common.check_pair)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]


# --- KUDGE (guijinSON/kudge) ----------------------------------------------------------------------

def read_kudge(row: dict[str, Any], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """Challenge set: a verifiable right answer (chosen) vs a wrong one; subset Korean-/English-Easy/Hard.

    `winner` (A/B) is where the right answer sat in the judge prompt; kept in label_info.
    """
    subset = str(row.get("subset") or ctx.subset or "")
    language = "ko" if subset.lower().startswith("korean") else "en" if subset.lower().startswith("english") else ctx.language
    yield PreferencePair(
        id=f"kudge/challenge/{ctx.index}",
        prompt=[{"role": "user", "content": as_text(row["instruction"], "instruction")}],
        chosen=as_text(row["chosen_response"], "chosen_response"),
        rejected=as_text(row["rejected_response"], "rejected_response"),
        language=language,
        source="kudge",
        subset=subset or None,
        label_info={"winner": row.get("winner"), "kind": "correctness"},
    )


def read_kudge_falseinfo(row: dict[str, Any], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """Pairwise false-info set: the expert-rated original answer vs the same answer with one false fact."""
    yield PreferencePair(
        id=f"kudge/falseinfo/{ctx.index}",
        prompt=[{"role": "user", "content": as_text(row["instruction"], "instruction")}],
        chosen=as_text(row["original_response"], "original_response"),
        rejected=as_text(row["response_with_false_info"], "response_with_false_info"),
        language="ko",
        source="kudge",
        subset="falseinfo",
        label_info={k: row.get(k) for k in ("false_info", "problem_sequence", "position",
                                            "original_human_score", "winner")},
    )


def read_kudge_pointwise(row: dict[str, Any], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """The pointwise false-info file holds ONE (corrupted) response per row and no alternative: not a pair.

    Its 54 items are the rows of k2-eval-pairwise-falseinfo.csv, which pairs each corrupted answer
    with its original, so nothing is lost by counting these rows instead of reading them.
    """
    raise BadRow("pointwise row: one response, no pair (use k2-eval-pairwise-falseinfo.csv)",
                 "single response scored 1-5 against a rubric")
    yield  # pragma: no cover - makes this a generator like every reader


# --- sionic-ai Data_Ko_hh-rlhf: DeepL-translated hh-rlhf harmless-base test ----------------------

# Line i of ko_harmless_base_test.txt is line i of harmless-base/test.jsonl translated by DeepL, as a
# would-be JSON line. The damage, seen in the file: the "rejected" key translated ("거부됨", "거부",
# "거절", ...; once written twice), quotes added at turn ends (`?"\n\nAssistant:`), invalid escapes
# (`\n\n\어시스턴트:`), role markers translated ("조수", "보조자", "비서", "Anssistant", ...) or glued to
# the previous sentence (`... 있나요? 인간: ...`), and the last turn put after the closing brace
# (`..."}{어시스턴트: ...`).
_KO_OPEN = re.compile(r'^\s*\{\s*"chosen"\s*:\s*"')
# The separator between the two values: `", "<key>": "` (the key possibly repeated).
_KO_SEP = re.compile(r'"\s*,\s*"([^"\\\n]{1,30})"\s*:\s*(?:"[^"\\\n]{1,30}"\s*:\s*)*"?')
_KO_CLOSE = re.compile(r'"?\s*\}+\s*$')
_KO_BRACE_TURN = re.compile(r'"\s*\}\s*\{+\s*')  # `"}{어시스턴트:` -> a turn boundary
_KO_USER = r"Human[가-힣]*|인간|사람|휴먼"
_KO_ASSISTANT = ("Assistant|Anssistant|Answister|Answer|[엔앤]?어시스턴트|어시스턴스|A시스턴트|[엔앤]?조수|"
                 "보조자|보조원|보조|비서|조교|지원자|조언자|조력자|도우미|지원|답변|응답")
_KO_TURN = re.compile(
    rf'(?:(?:^|\n+)\s*\\?|(?<=[.?!"]) ?)({_KO_USER}|{_KO_ASSISTANT})\s*:[ ]?')
_KO_USER_RE = re.compile(rf"(?:{_KO_USER})$")
_KO_KEY_IS_ROLE = re.compile(rf"\s*(?:{_KO_USER}|{_KO_ASSISTANT})\s*:?.*", re.S)


def read_ko_hh_rlhf_deepl(row: dict[str, Any], ctx: RowContext, report: DropReport) -> Iterator[PreferencePair]:
    """Recover {chosen, rejected} transcripts from a damaged line, then the context and two answers.

    Valid JSON lines are used as they are (whatever the second key became); others are cut at the
    key separator and their escapes repaired. Both sides are the same English conversation
    translated twice, so the prompt is taken from whichever side's context is well formed (chosen
    first); where the two translations differ the rejected side's wording is kept in label_info.
    A marker mistranslated as the wrong speaker right before or at the answer is set by position
    (the turn before an answer is the Human's) and flagged; a side whose answer the translation
    lost is dropped ("answer lost in translation").
    """
    if "__line__" in row:
        chosen_t, rejected_t, key = _ko_cut(row["__line__"])
    else:
        keys = [k for k in row if not k.startswith("__")]
        if len(keys) != 2 or keys[0] != "chosen" or not all(isinstance(row[k], str) for k in keys):
            raise BadRow("unexpected keys", f"keys {keys}")
        chosen_t, rejected_t, key = row["chosen"], row[keys[1]], keys[1]
    c, r = _ko_turns(chosen_t, "chosen"), _ko_turns(rejected_t, "rejected")
    for side, other, name in ((c, r, "chosen"), (r, c, "rejected")):
        if side[-1]["role"] == "assistant":
            continue
        if len(side) == len(other) and other[-1]["role"] == "assistant":
            # Same number of turns as the other side, which ends with the answer: a mistranslated marker.
            side[-1]["role"] = "assistant"
            report.flag("answer's role marker mistranslated as Human (set by position)", ctx.where, name)
        elif len(side) == len(other) - 1 and (split := _ko_unglue(side[-1]["content"], other[-2]["content"])):
            # The answer was glued to the Human turn without a marker ("집에서 마십니다: 술을 많이 ...").
            side[-1]["content"] = split[0]
            side.append({"role": "assistant", "content": split[1]})
            report.flag("answer glued to the Human turn (split at the sentence matching the other side)",
                        ctx.where, name)
        else:
            raise BadRow("answer lost in translation", f"{name} ends with a Human turn ({len(side)} turns, "
                         f"the other side {len(other)})")
    prompt = _ko_context(c[:-1]) or _ko_context(r[:-1])
    if prompt is None:
        prompt = c[:-1] if c[:-1] else r[:-1]
        if not prompt:
            raise BadRow("no role markers", "neither side has a turn before its answer")
        # The turn right before an hh-rlhf answer is the Human's: its marker was mistranslated.
        prompt = [*prompt[:-1], {"role": "user", "content": prompt[-1]["content"]}]
        report.flag("turn before the answer marked as the assistant's (set to Human by position)", ctx.where)
    info: dict[str, Any] = {"label": "crowdworker pairwise choice (English original)", "rejected_key": key,
                            "english_line": ctx.index + 1}
    other = r[:-1] if prompt is not c[:-1] else c[:-1]
    if [m["content"] for m in other] != [m["content"] for m in prompt]:
        info["other_side_context"] = other
        report.flag("context translated differently on the two sides (one side's context used)", ctx.where)
    yield PreferencePair(
        id=f"ko-hh-rlhf/harmless-base/{ctx.index}",
        prompt=prompt,
        chosen=c[-1]["content"],
        rejected=r[-1]["content"],
        language="ko",
        source="ko-hh-rlhf",
        subset="harmless-base",
        label_info=info,
    )


def _ko_cut(line: str) -> tuple[str, str, str]:
    """(chosen text, rejected text, rejected key) from a line that is not valid JSON."""
    m = _KO_OPEN.match(line)
    if not m:
        raise BadRow("no chosen field", 'the line does not start with {"chosen": "')
    line = _KO_BRACE_TURN.sub(r"\\n\\n", line)
    seps = [s for s in _KO_SEP.finditer(line, m.end()) if not _KO_KEY_IS_ROLE.fullmatch(s.group(1))]
    if seps:
        # The separator is the last one: a stray `", "` inside a transcript comes before the real key.
        sep = seps[-1]
        chosen, start, key = line[m.end():sep.start()], sep.end(), sep.group(1)
    else:
        # DeepL translated the separator into a sentence: `...", "거부됨"입니다: "\n\nHuman: ...`. The
        # rejected transcript starts at the last `: "` before a "\n\nHuman" turn; the chosen one ends
        # at the first `", "` before it; pieces in between that open with a role marker are its turns.
        starts = list(_KO_REJ_START.finditer(line, m.end()))
        if not starts:
            raise BadRow("no rejected field", "no `\", \"<key>\": \"` separator and no second transcript")
        start = starts[-1].end()
        pieces = _KO_PIECE.split(line[m.end():starts[-1].start()])
        chosen = pieces[0] + "".join("\\n\\n" + p for p in pieces[1:] if _KO_KEY_IS_ROLE.match(p) and ":" in p[:12])
        key = pieces[1] if len(pieces) > 1 else ""
    end = _KO_CLOSE.search(line, start)
    rejected = line[start:end.start() if end else len(line)]
    # `...?", "거부됨", "지원: 죄송합니다...`: a turn cut off by key debris.
    chosen, rejected = (_KO_DEBRIS_TURN.sub(r"\\n\\n", t) for t in (chosen, rejected))
    return _ko_unescape(chosen), _ko_unescape(rejected), key


_KO_REJ_START = re.compile(r':\s*"(?=\\n\\n(?:Human|인간))')
_KO_PIECE = re.compile(r'"\s*,\s*"')
_KO_DEBRIS_TURN = re.compile(rf'"\s*,\s*"(?:[^"\\]{{1,30}}"\s*,\s*")*(?=(?:{_KO_USER}|{_KO_ASSISTANT})\s*:)')


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/", "r": "\r", "b": "\b", "f": "\f"}


def _ko_unescape(s: str) -> str:
    """JSON string escapes, leniently: `\\uXXXX` and the usual ones; an invalid `\\X` keeps just X."""
    return _KO_ESCAPE.sub(lambda m: chr(int(m.group(1)[1:], 16)) if len(m.group(1)) == 5
                          else _ESCAPES.get(m.group(1), m.group(1)), s)


_KO_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)


def _ko_turns(text: str, field: str) -> list[Message]:
    """Turns by marker; the last must be an answer (by marker, or by position when mistranslated)."""
    parts = _KO_TURN.split(text)
    if parts[0].strip(' "\n\\'):
        raise BadRow("text before the first turn", f"{field} starts with {parts[0][:30]!r}")
    if len(parts) < 3:
        raise BadRow("no role markers", f"{field} has no recognisable turn")
    turns = [{"role": "user" if _KO_USER_RE.match(parts[i]) else "assistant",
              # DeepL put stray quotes at turn ends: `?"` before the next marker.
              "content": parts[i + 1].strip().strip('"').strip()} for i in range(1, len(parts), 2)]
    if not turns[-1]["content"]:
        raise BadRow("empty response", f"{field}'s last turn is empty")
    return turns


_KO_BOUNDARY = re.compile(r'(?<=[?!.])\s+|(?<=[?!.])(?=[가-힣])|:\s+|"\}?:\s*"')


def _ko_unglue(text: str, reference: str) -> tuple[str, str] | None:
    """Split "question answer" at the sentence boundary whose question is closest in length to the
    other side's translation of the same question; None when no boundary is plausible."""
    if len(text) < 1.5 * len(reference):
        return None  # no room for an answer: the translation lost it (most such lines)
    best = None
    for m in _KO_BOUNDARY.finditer(text):
        question, answer = text[:m.start()].strip(' "'), text[m.end():].strip(' "')
        if not answer or not 0.6 * len(reference) <= len(question) <= 1.6 * len(reference) + 10:
            continue
        if best is None or abs(len(question) - len(reference)) < abs(len(best[0]) - len(reference)):
            best = (question, answer)
    return best


def _ko_context(turns: list[Message]) -> list[Message] | None:
    """The context when it ends with a Human turn as marked, else None."""
    return turns if turns and turns[-1]["role"] == "user" else None
