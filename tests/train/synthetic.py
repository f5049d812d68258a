"""A learnable synthetic preference set in the generic JSONL layout (explicit conversational prompt).

The chosen answer is a polite, on-topic sentence; the rejected one a curt refusal — a signal a
2-layer random model learns in a few dozen steps — in en, ja and ko.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

GOOD = {
    "en": ["Sure, here is a careful answer with the steps you need.", "Happy to help: first do this, then that."],
    "ja": ["はい、手順を丁寧に説明します。まず材料をそろえます。", "喜んでお手伝いします。順番に説明します。"],
    "ko": ["네, 자세히 설명해 드릴게요. 먼저 준비물을 챙기세요.", "기꺼이 도와드릴게요. 순서대로 알려드립니다."],
}
BAD = {"en": ["No.", "I don't know."], "ja": ["いいえ。", "知りません。"], "ko": ["아니요.", "몰라요."]}
QUESTIONS = {
    "en": "How do I boil an egg? ({})", "ja": "卵のゆで方を教えてください。({})", "ko": "계란은 어떻게 삶나요? ({})",
}


def write_pairs(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        lang = ("en", "ja", "ko")[i % 3]
        good, bad = rng.choice(GOOD[lang]), rng.choice(BAD[lang])
        # Some filler varies the lengths so batching and padding are exercised.
        filler = " ".join(["more"] * rng.randint(0, 12))
        rows.append({
            "prompt": [{"role": "user", "content": QUESTIONS[lang].format(i) + " " + filler}],
            "chosen": good, "rejected": bad, "language": lang,
        })
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
