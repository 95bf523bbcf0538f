"""Language-model metrics for the training evaluator: per-token loss, perplexity and the reward.

A language model maps (B, T) token ids to (B, T, V) logits against (B, T) next-token targets;
losses and accuracies are per token. Perplexity is exp(mean per-token cross-entropy), lower is
better, so the reward strategies maximise is its negation, ``neg_valid_ppl``.
"""

from __future__ import annotations

import math

import torch

from archsearch.core import Task

LM_KIND = "language_model"
LM_OBJECTIVE = "neg_valid_ppl"
LM_GRAD_CLIP = 0.25  # gradient-norm clipping for language models when the evaluator sets none (AWD-LSTM's value)


def is_language_model(task: Task) -> bool:
    return task.kind == LM_KIND


def flatten_tokens(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, V) logits and (B, T) targets -> (B*T, V) and (B*T,); classification outputs pass through."""
    if logits.dim() == 3:
        return logits.flatten(0, 1), targets.flatten()
    return logits, targets


def perplexity(loss: float) -> float:
    """exp(loss); infinite (not an OverflowError) for a diverged model."""
    return math.exp(loss) if loss < 700 else math.inf


def lm_metrics(prefix: str, loss: float) -> dict[str, float]:
    """``{prefix}_ppl`` and, for validation, the reward ``neg_valid_ppl``."""
    ppl = perplexity(loss)
    out = {f"{prefix}_ppl": ppl}
    if prefix == "valid":
        out[LM_OBJECTIVE] = -ppl
    return out
