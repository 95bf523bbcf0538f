"""``archsearch.search``: a search in one call, for people writing Python rather than YAML.

Everything goes through the same :class:`Config` as the CLI, so the same checks and messages apply.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional, Union

import numpy as np

from archsearch.config import Config
from archsearch.data.base import Splits, from_arrays
from archsearch.data.files import dataset_spec
from archsearch.errors import ConfigError
from archsearch.experiment import Summary, run_search

Data = Union[None, str, Splits, tuple[Any, Any]]


def _section(value: Union[str, dict[str, Any]], what: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict):
        return dict(value)
    raise ConfigError(f"{what} must be a name or a dict of options with a 'name', got {type(value).__name__}")


def search(data: Data = None, *, space: Union[str, dict[str, Any]] = "chain",
           strategy: Union[str, dict[str, Any]] = "evolution", budget: Optional[int] = None,
           out: Optional[str] = None, seed: int = 0, quiet: bool = True, **sections: Any) -> Summary:
    """Run a search and return its :class:`Summary` (``best.arch``, ``best.metrics``, ``final``, ``model_path``).

    ``data``: None (the built-in digits), a dataset name or path as on the command line
    (``"mnist:/data/mnist"``, a folder, an ``.npz``), a :class:`Splits`, or ``(x, y)`` arrays of
    images ((N, C, H, W) or (N, H, W)) and integer labels, split 60/20/20 by ``seed``.
    ``space`` and ``strategy``: a registered name, or a dict with ``name`` and options.
    ``budget``: complete trials. Any other config section is a keyword: ``fidelity={"epochs": 2}``,
    ``final={"epochs": 20}``, ``evaluator={"lr": 1e-3}``, ``executor={"name": "process", "workers": 2}``.
    ``out``: the search directory (default ``runs/<space>-<strategy>-<time>``).
    """
    config: dict[str, Any] = {"seed": seed, "space": _section(space, "space"),
                              "strategy": _section(strategy, "strategy")}
    for key, value in sections.items():
        if key in ("dataset", "evaluator", "executor", "fidelity", "final", "budget"):
            config[key] = _section(value, key) if key in ("dataset", "evaluator", "executor") else dict(value)
        else:
            raise ConfigError(f"unknown keyword {key!r} (valid: data, space, strategy, budget, out, seed, quiet, "
                              "dataset, evaluator, executor, fidelity, final)")
    if budget is not None:
        config["budget"] = {**config.get("budget", {}), "trials": budget}
    splits: Optional[Splits] = None
    if isinstance(data, Splits):
        splits = data
    elif isinstance(data, tuple):
        if len(data) != 2:
            raise ConfigError("data as a tuple must be (x, y): images and integer labels")
        splits = from_arrays(np.asarray(data[0]), np.asarray(data[1]), seed=seed)
    elif isinstance(data, str):
        config["dataset"] = dataset_spec(data)
    elif data is not None:
        raise ConfigError(f"data must be None, a dataset name or path, a Splits or (x, y) arrays, "
                          f"got {type(data).__name__}")
    cfg = Config.from_dict(config)
    out = out or os.path.join("runs", f"{cfg.space['name']}-{cfg.strategy['name']}-{time.strftime('%Y%m%d-%H%M%S')}")
    return run_search(cfg, out, data=splits, quiet=quiet)
