"""The training evaluator's training settings: its options, and the per-architecture overrides a
space's architectures may carry (:class:`~archsearch.spaces.capabilities.CarriesTrainingOverrides`,
the ``hyperparams`` space, for HPO and joint architecture + hyper-parameter search)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from archsearch.core import Fidelity
from archsearch.devices import check_device
from archsearch.estimation.augment import AUGMENTS
from archsearch.estimation.memory import memory_problem
from archsearch.errors import ConfigError
from archsearch.options import OptionError, as_dict, option
from archsearch.spaces.base import Architecture
from archsearch.spaces.capabilities import (
    TRAINING_KEYS, CarriesTrainingOverrides, TrainingHyperparameters, check_training_setting,
)

__all__ = ["TRAINING_KEYS", "TrainingOptions", "check_training_option", "training_overrides", "training_settings"]


@dataclass(frozen=True)
class TrainingOptions(TrainingHyperparameters):
    """How trials train: the hyper-parameters an architecture may override, plus the time and memory
    limits, device, gradient clipping and image augmentation (estimation/augment.py; evaluator-wide, so
    not among the hyper-parameters an architecture carries)."""

    timeout: Optional[float] = option(None, "seconds a trial may train before it fails (null: no limit)", above=0)
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    grad_clip: Optional[float] = option(None, "gradient-norm limit (0: none; null: 0.25 for language models, "
                                              "none for classification)", low=0)
    augment: str = option("crop", "image training batches (other data untouched): crop = random crop of the "
                                  "image zero-padded by side/14 px (none under 16 px); crop+flip also mirrors half "
                                  "(not for digits)", choices=AUGMENTS)
    augment_search: bool = option(False, "augment search trials too (final training always uses augment)")
    max_memory: Optional[Union[int, float, str]] = option(
        None, "most memory a trial may need (bytes, or a size such as 4GB): a network estimated over it fails "
              "with reason memory, untrained (null: 80% of the RAM, or GPU memory, free when the trial starts)",
        check=memory_problem)

    def __post_init__(self) -> None:
        try:
            check_device(self.device, "device")
        except ConfigError as exc:  # a device this machine lacks: named like any other option error
            raise OptionError(str(exc)) from None


def check_training_option(key: str, value: Any, where: str = "evaluator") -> Any:
    """Validate one training setting with the evaluator's rules; ConfigError names ``where.key``."""
    return check_training_setting(key, value, where)


def training_overrides(arch: Architecture) -> dict[str, Any]:
    """Training settings an architecture carries for itself (validated), else ``{}``."""
    if not isinstance(arch, CarriesTrainingOverrides):
        return {}
    return {key: check_training_option(key, value, "architecture hyper-parameter")
            for key, value in dict(arch.training_overrides()).items()}


def training_settings(opts: TrainingHyperparameters, arch: Architecture, fidelity: Fidelity) -> dict[str, Any]:
    """The training settings for ``arch``: the evaluator's options and the fidelity's epochs, overridden
    by the hyper-parameters the architecture carries. An ``epochs`` hyper-parameter replaces the
    fidelity's epochs, in search and final training."""
    settings: dict[str, Any] = {key: value for key, value in as_dict(opts).items() if key in TRAINING_KEYS}
    settings["epochs"] = fidelity.epochs
    settings.update(training_overrides(arch))
    return settings
