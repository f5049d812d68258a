"""A rewardsmith reward model inside other people's trainers, scoring exactly as `rewardsmith score` does.

    rewardsmith.integrations.trl    RewardFunction: an entry of TRL's `reward_funcs` (GRPO, RLOO, ...)
    rewardsmith.integrations.verl   compute_score / compute_score_batch: verl's custom reward function

OpenRLHF reaches a model over HTTP (`rewardsmith serve` answers its `/get_reward`; see
rewardsmith.serve.openrlhf). Every route scores through `rewardsmith.score.Scorer`, so the model
sees the input format, truncation and pooling its manifest names; docs/integrations.md says why
the trainers' own model paths do not (TRL re-renders and pools by its own rules).
Nothing here imports TRL or verl: they call us with plain Python values.
"""
