"""Pairwise judge prompts, one reviewed constant per language.

The judge sees one user instruction and two answers labelled A and B, and must end with exactly
one of `[[A]]`, `[[B]]` or `[[C]]` (a tie): the MT-Bench pairwise format (Zheng et al. 2023,
arXiv:2306.05685), whose bracketed tokens are easy to parse and rarely appear in answers by
chance. The verdict is asked for on the FIRST line so that a small judge with a short token
budget still produces it; any explanation comes after. Every pair is judged in both orders by
`rewardsmith.judge.core`, so a prompt never has to fight position bias on its own.

Placeholders: {question}, {answer_a}, {answer_b}.
"""

from __future__ import annotations

SYSTEM = {
    "en": (
        "You are a careful, impartial judge of AI assistant answers. Compare two answers to the "
        "same user question and decide which one is more helpful, correct, honest and harmless. "
        "Do not let the order of the answers, their length or the assistants' names influence "
        "you. Output your verdict on the first line, exactly one of: [[A]] if answer A is better, "
        "[[B]] if answer B is better, [[C]] if they are equally good. Then give a one-sentence reason."
    ),
    "ja": (
        "あなたはAIアシスタントの回答を公平かつ慎重に評価する審査員です。同じユーザーの質問に対する"
        "2つの回答を比較し、より役に立ち、正確で、誠実かつ無害な回答を選んでください。回答の順序や長さに"
        "影響されてはいけません。1行目に判定を次のいずれか1つだけで出力してください: 回答Aが優れていれば"
        "[[A]]、回答Bが優れていれば[[B]]、同等であれば[[C]]。その後に理由を1文で述べてください。"
    ),
    "ko": (
        "당신은 AI 어시스턴트의 답변을 공정하고 신중하게 평가하는 심사위원입니다. 같은 사용자 질문에 대한 "
        "두 답변을 비교하여 더 도움이 되고, 정확하고, 정직하며, 무해한 답변을 고르세요. 답변의 순서나 "
        "길이에 영향을 받지 마세요. 첫 줄에 판정을 다음 중 하나로만 출력하세요: 답변 A가 더 나으면 [[A]], "
        "답변 B가 더 나으면 [[B]], 비슷하면 [[C]]. 그다음 이유를 한 문장으로 쓰세요."
    ),
}

USER = {
    "en": (
        "[User question]\n{question}\n\n"
        "[Answer A]\n{answer_a}\n[End of answer A]\n\n"
        "[Answer B]\n{answer_b}\n[End of answer B]\n\n"
        "Which answer is better? First line: [[A]], [[B]] or [[C]]."
    ),
    "ja": (
        "[ユーザーの質問]\n{question}\n\n"
        "[回答A]\n{answer_a}\n[回答Aの終わり]\n\n"
        "[回答B]\n{answer_b}\n[回答Bの終わり]\n\n"
        "どちらの回答が優れていますか？ 1行目に [[A]]、[[B]]、[[C]] のいずれかを書いてください。"
    ),
    "ko": (
        "[사용자 질문]\n{question}\n\n"
        "[답변 A]\n{answer_a}\n[답변 A 끝]\n\n"
        "[답변 B]\n{answer_b}\n[답변 B 끝]\n\n"
        "어느 답변이 더 낫습니까? 첫 줄에 [[A]], [[B]], [[C]] 중 하나를 쓰세요."
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

LANGUAGES = tuple(SYSTEM)
