"""Pairwise judge prompts, one reviewed constant per language.

The judge sees one user instruction and two answers labelled A and B, and must end with exactly
one of `[[A]]`, `[[B]]` or `[[C]]` (a tie): the MT-Bench pairwise format (Zheng et al. 2023,
arXiv:2306.05685), whose bracketed tokens are easy to parse and rarely appear in answers by
chance. One user message, the instruction restated last and ending in "Verdict:", so the verdict
comes first and fits a short token budget. This layout was chosen by trying variants on
SmolLM2-135M (a system prompt and "[User question]" headers made it copy the prompt instead of
answering). Every pair is judged in both orders by `rewardsmith.judge.core`, so a prompt never
has to fight position bias on its own.

Placeholders: {question}, {answer_a}, {answer_b}.
"""

from __future__ import annotations

PAIRWISE = {
    "en": (
        "Read the user's question and two answers, then decide which answer is more helpful, correct, "
        "honest and harmless. Ignore the order of the answers and their length.\n\n"
        "Question: {question}\n\n"
        "Answer A: {answer_a}\n\n"
        "Answer B: {answer_b}\n\n"
        "Write [[A]] if answer A is better, [[B]] if answer B is better, or [[C]] if they are equally "
        "good, then one sentence why. Verdict:"
    ),
    "ja": (
        "ユーザーの質問と2つの回答を読み、より役に立ち、正確で、誠実かつ無害な回答を判定してください。"
        "回答の順序や長さに影響されてはいけません。\n\n"
        "質問: {question}\n\n"
        "回答A: {answer_a}\n\n"
        "回答B: {answer_b}\n\n"
        "回答Aが優れていれば[[A]]、回答Bが優れていれば[[B]]、同等であれば[[C]]と書き、"
        "その後に理由を1文で述べてください。判定:"
    ),
    "ko": (
        "사용자의 질문과 두 답변을 읽고, 더 도움이 되고 정확하며 정직하고 무해한 답변을 판정하세요. "
        "답변의 순서나 길이에 영향을 받지 마세요.\n\n"
        "질문: {question}\n\n"
        "답변 A: {answer_a}\n\n"
        "답변 B: {answer_b}\n\n"
        "답변 A가 더 나으면 [[A]], 답변 B가 더 나으면 [[B]], 비슷하면 [[C]]라고 쓰고, "
        "그다음 이유를 한 문장으로 쓰세요. 판정:"
    ),
}

# Instruction synthesis (Self-Instruct style, Wang et al. 2023, arXiv:2212.10560): show a few
# seed instructions, ask for one new one. One instruction per request keeps parsing trivial and
# makes every request independently cacheable. Placeholder: {examples} (a numbered list).
NEW_INSTRUCTION = {
    "en": (
        "Here are some example requests that users send to an AI assistant:\n{examples}\n"
        "Write ONE new, different request on another topic, in English, in the same style. "
        "Output only the request itself."
    ),
    "ja": (
        "ユーザーがAIアシスタントに送る依頼の例です:\n{examples}\n"
        "これらとは異なる話題について、同じような新しい依頼を日本語で1つだけ書いてください。"
        "依頼文だけを出力してください。"
    ),
    "ko": (
        "사용자가 AI 어시스턴트에게 보내는 요청의 예시입니다:\n{examples}\n"
        "이와 다른 주제로 비슷한 새 요청을 한국어로 하나만 쓰세요. 요청 문장만 출력하세요."
    ),
}

# Logprob verdicts: the assistant's reply is begun with these words, and the judge's answer is
# the next-token probability of each of CHOICES (A, B, or C = tie) -- the prompt's own "[[X]]"
# format, read one token early instead of generated and parsed.
VERDICT_PREFIX = {"en": "Verdict: [[", "ja": "判定: [[", "ko": "판정: [["}
CHOICES = ("A", "B", "C")

LANGUAGES = tuple(PAIRWISE)
