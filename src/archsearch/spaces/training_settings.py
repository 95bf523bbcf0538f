"""The training settings an architecture may carry for itself (:class:`CarriesTrainingOverrides`,
the ``hyperparams`` space's), with the rules the training evaluator applies to its own options:
here, below both, so the space checks a grid with the same words the evaluator uses."""

from __future__ import annotations

import math
from typing import Any

from archsearch.errors import ConfigError

OPTIMIZERS = ("adamw", "sgd")
TRAINING_KEYS = ("lr", "weight_decay", "batch_size", "optimizer", "label_smoothing", "epochs")


def check_training_option(key: str, value: Any, where: str = "evaluator") -> Any:
    """Validate one training setting with the evaluator's rules; ConfigError names ``where.key``."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key == "batch_size":
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            raise ConfigError(f"{where}.batch_size must be an integer >= 2, got {value!r}")
    elif key == "lr":
        if not number or not value > 0 or not math.isfinite(value):
            raise ConfigError(f"{where}.lr must be a positive number, got {value!r}")
    elif key == "weight_decay":
        if not number or not 0 <= value < math.inf:
            raise ConfigError(f"{where}.weight_decay must be >= 0, got {value!r}")
    elif key == "optimizer":
        if value not in OPTIMIZERS:
            raise ConfigError(f"{where}.optimizer must be one of: {', '.join(OPTIMIZERS)} (got {value!r})")
    elif key == "label_smoothing":
        if not number or not 0 <= value < 1:
            raise ConfigError(f"{where}.label_smoothing must be in [0, 1), got {value!r}")
    elif key == "epochs":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}.epochs must be an integer >= 1, got {value!r}")
    else:
        raise ConfigError(f"{where}: unknown training setting {key!r} (valid: {', '.join(TRAINING_KEYS)})")
    return value
