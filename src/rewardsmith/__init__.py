"""rewardsmith: build, evaluate and serve reward models (Japanese, Korean and English first-class).

Stages, one module each, data flowing one way:
    data -> models (load, input format, manifest) -> score -> evaluate / serve
    data -> synth / judge (makes pairs);  data + models -> train (makes models)
"""

from rewardsmith.errors import RewardsmithError

__version__ = "0.1.0"
__all__ = ["RewardsmithError", "__version__"]
