"""verl's custom reward function against a running `rewardsmith serve` (reward_kwargs.url)."""

from __future__ import annotations

import pytest

from rewardsmith.errors import RewardsmithError
from rewardsmith.integrations.verl import compute_score_batch


def test_url_route_returns_the_servers_library_scores(serve, encoder_rm_dir):
    from rewardsmith.score import Scorer

    server = serve(encoder_rm_dir)
    prompts = ["한국의 수도는?", [{"role": "user", "content": "卵のゆで方は？"}]]
    answers = ["서울입니다.", "9分ゆでます。"]
    infos = [{"prompt": p} for p in prompts]
    items = [([{"role": "user", "content": "한국의 수도는?"}], answers[0]), (prompts[1], answers[1])]
    expected = Scorer(server.rm, precision="fp32").score(items)
    got = compute_score_batch(["ko", "ja"], answers, [None, None], infos, url=server.url)
    assert got == pytest.approx(expected, abs=1e-6)
    m = server.rm.manifest
    calibrated = compute_score_batch(["ko", "ja"], answers, [None, None], infos, url=server.url, normalize=True)
    assert calibrated == pytest.approx([(r - m.score_mean) / m.score_std for r in expected])
    with pytest.raises(RewardsmithError, match="answered 422.*empty"):
        compute_score_batch(["ko"], [""], [None], infos[:1], url=server.url)
