"""``archsearch predict``: the found model on a user's inputs (or the run's own test split), as rows
for a table or a CSV, scored against labels when the inputs have them."""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from archsearch.deploy.checkpoint import load_model
from archsearch.deploy.inputs import Inputs, read_inputs, run_test_split
from archsearch.deploy.model import FoundModel, Predictions
from archsearch.errors import ArchsearchError, DataError


@dataclass
class PredictResult:
    inputs: Inputs
    predictions: Predictions
    model: FoundModel
    warning: Optional[str] = None

    @property
    def labels(self) -> Optional[np.ndarray]:
        labels = self.inputs.labels
        if labels is not None and labels.ndim == 2:  # language-model windows: the next token after each
            labels = labels[:, -1]
        return labels

    def accuracy(self) -> Optional[float]:
        return None if self.labels is None else self.predictions.accuracy(self.labels)

    def header(self, top: int) -> list[str]:
        cols = ["input", "class", "name", "probability"]
        for k in range(2, top + 1):
            cols += [f"class_{k}", f"name_{k}", f"probability_{k}"]
        return cols + (["label", "correct"] if self.labels is not None else [])

    def rows(self, top: int) -> list[list[Any]]:
        p, names = self.predictions, self.model.class_names
        out = []
        for i, input_name in enumerate(self.inputs.names):
            row: list[Any] = [input_name, int(p.classes[i]), p.names[i] or "", f"{p.probs[i]:.4f}"]
            for k in range(1, min(top, p.top_classes.shape[1])):
                c = int(p.top_classes[i, k])
                row += [c, names[c] if names else "", f"{p.top_probs[i, k]:.4f}"]
            if self.labels is not None:
                row += [int(self.labels[i]), int(self.labels[i] == p.classes[i])]
            out.append(row)
        return out


def predict_run(run: str, inputs: Optional[str] = None, top: int = 1, batch_size: int = 256) -> PredictResult:
    """Predictions of ``run``'s model (a search directory or ``best_model.pt``) on ``inputs`` (a path;
    None: the run's own test split, found again in raw form from its config and seed)."""
    if not isinstance(top, int) or top < 1:
        raise ArchsearchError(f"--top must be an integer >= 1, got {top!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(run)
    warning = str(caught[0].message) if caught else None
    data = read_inputs(inputs, model) if inputs is not None else run_test_split(model.info)
    return PredictResult(data, model.predict(data.x, top=top, batch_size=batch_size), model, warning)


def write_csv(result: PredictResult, top: int, path: str) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(result.header(top))
            writer.writerows(result.rows(top))
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None
