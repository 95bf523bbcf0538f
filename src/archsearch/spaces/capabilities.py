"""What a space's architectures and networks may offer the evaluator beyond the protocol.

Each capability is a small named interface: the evaluator checks it with ``isinstance``, so a
space opts in by subclassing it, and nothing is guessed from attribute names.

* :class:`CarriesTrainingOverrides`: an architecture that carries its own training settings (the
  ``hyperparams`` space, for HPO and joint architecture + hyper-parameter search).
* :class:`AuxiliaryClassifier`: a network with an auxiliary head (DARTS-style) whose logits add
  a weighted loss in training.

The settings an architecture may override, and their rules, are declared here once
(:class:`TrainingHyperparameters`): the training evaluator's own options reuse the
declaration, and a space checks the values it offers without importing the evaluator.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

from archsearch.errors import ConfigError
from archsearch.options import Declared, Options, Spec, convert, declared, option

if TYPE_CHECKING:
    import torch

OPTIMIZERS = ("adamw", "sgd")


def _positive(value: float) -> Optional[str]:
    return None if value > 0 and math.isfinite(value) else "must be a positive number"


@dataclass(frozen=True)
class TrainingHyperparameters(Options):
    """The training settings an architecture may override (plus ``epochs``, see :data:`TRAINING_KEYS`)."""

    lr: float = option(3e-3, "learning rate (cosine schedule to 0 over the epochs)", check=_positive)
    weight_decay: float = option(5e-4, "weight decay", low=0, below=math.inf)
    batch_size: int = option(64, "examples per optimiser step", low=2)
    optimizer: str = option("adamw", "optimiser (sgd: momentum 0.9, Nesterov)", choices=OPTIMIZERS)
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy loss", low=0, below=1)


_EPOCHS = Declared("epochs", int, 1, Spec(help="training epochs (replaces the fidelity's)", low=1))
# training settings an architecture may override for its own trials, in this order
TRAINING_KEYS: tuple[str, ...] = tuple(d.name for d in declared(TrainingHyperparameters)) + ("epochs",)


def check_training_setting(key: str, value: Any, where: str = "evaluator") -> Any:
    """``value`` checked (and converted) with the rules of training setting ``key``; the ConfigError
    names ``where.key``."""
    rules = {d.name: d for d in declared(TrainingHyperparameters)}
    rules["epochs"] = _EPOCHS
    if key not in rules:
        raise ConfigError(f"{where}: unknown training setting {key!r} (valid: {', '.join(TRAINING_KEYS)})")
    return convert(rules[key], value, f"{where}.{key}")


class CarriesTrainingOverrides(ABC):
    """An architecture that carries training settings for itself: the evaluator applies them to its
    search trials and its final training, over its own options."""

    @abstractmethod
    def training_overrides(self) -> Mapping[str, Any]:
        """A mapping over :data:`TRAINING_KEYS` (an ``epochs`` entry replaces the fidelity's epochs)."""


class AuxiliaryClassifier(ABC):
    """A network with an auxiliary classifier head: after a forward pass in training mode
    :meth:`auxiliary_logits` are that head's logits (None when it made none for that batch)."""

    @abstractmethod
    def auxiliary_logits(self) -> Optional["torch.Tensor"]:
        """The auxiliary head's logits of the last forward pass, or None."""
