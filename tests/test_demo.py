"""Integration: `rewardsmith demo` runs all seven steps on the embedded models and real data.

A shortened run (few training steps, a small test set) so it fits the suite; `make demo` runs the
full-size one. It checks what a newcomer is promised: every step ran, the files it points at
exist and hold numbers computed in this run, and the HTTP scores equal the library's.
"""

import json
import re

import pytest

from rewardsmith.cli import main


@pytest.mark.integration
def test_demo_runs_end_to_end(tmp_path, shared_data, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--data", str(shared_data), "--train-steps", "8",
                 "--test-per-language", "40"])
    printed = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + printed[-4000:])
    assert code == 0
    assert all(f"[{i}/7]" in printed for i in range(1, 8))

    synth = json.loads((out / "synth" / "report.json").read_text())
    assert synth  # the synth stage wrote its report (counts of pairs, ties, flips, failures)

    result = json.loads((out / "rm" / "train_result.json").read_text())
    assert result["steps"] == 8
    assert set(result["validation"]["by_language"]) == {"en", "ja", "ko"}

    table = (out / "eval" / "table.md").read_text()
    for row in ("trained", "untrained-head"):
        assert row in table
    for column in ("test-en", "test-ko", "test-ja"):
        assert column in table
    assert (out / "eval" / "report.html").stat().st_size > 10_000

    worst = re.search(r"largest difference between HTTP and library scores: (\S+)", printed)
    assert worst and float(worst.group(1)) <= 1e-3
    assert str(out / "rm") in printed and str(out / "eval" / "report.html") in printed


@pytest.mark.parametrize("has_bf16, expected", [(True, (250, "bf16")), (False, (50, "fp32"))])
def test_demo_trains_fewer_steps_where_training_runs_in_fp32(monkeypatch, has_bf16, expected):
    # ~5x fewer training tokens/s without bf16 matmul units: the demo keeps its time budget.
    import rewardsmith.score
    from rewardsmith.demo import default_train_steps

    monkeypatch.setattr(rewardsmith.score, "bf16_supported", lambda device: has_bf16)
    assert default_train_steps() == expected
