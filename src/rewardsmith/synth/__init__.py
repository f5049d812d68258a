"""Pseudo-preference synthesis: instructions -> responses -> pairs -> judged PreferencePairs.

Each stage is a function in its own module (`instructions`, `responses`, `pairing`, `judging`);
`pipeline.run(SynthConfig(...), stages)` runs any of them in order on an output folder, with
every LLM request cached on disk so a killed run resumes and a finished one re-runs for free.
"""

from rewardsmith.synth.pipeline import STAGES, SynthConfig, run

__all__ = ["STAGES", "SynthConfig", "run"]
