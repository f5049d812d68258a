"""Evaluate reward models and LLM judges the way the model cards do, and more rigorously.

`evaluate(evaluators, datasets)` -> `EvalResult` (the table, breakdowns, diagnostics);
`write_report(result, out_dir)` writes Markdown/CSV/JSON, PNG plots and one HTML report.
`RewardModelEvaluator` wraps a reward model (scores cached on disk, see `cache`); anything with
the `Evaluator` protocol (a judge) can be a row too.
"""

from rewardsmith.evaluate.cache import ScoreCache
from rewardsmith.evaluate.report import write_report
from rewardsmith.evaluate.run import (
    DatasetSpec,
    EvalResult,
    Evaluator,
    Judgement,
    RewardModelEvaluator,
    evaluate,
    load_dataset,
    parse_dataset,
)

__all__ = ["DatasetSpec", "EvalResult", "Evaluator", "Judgement", "RewardModelEvaluator", "ScoreCache",
           "evaluate", "load_dataset", "parse_dataset", "write_report"]
