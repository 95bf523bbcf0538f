"""Preprocessing as part of the model: what the data source did to inputs, done again in front of the network.

The data layer records, per dataset, how a raw input (as the source read it: uint8 or float images
in (C, H, W); text as strings) became the training tensor: divide by ``scale``, subtract the training
split's per-channel ``mean``, divide by its ``std``, then resize to the searched ``resolution``
(data/base.py ``image_preprocessing``; estimation/training.py ``prepare_split``). The modules here
repeat exactly those float32 operations, so a found model given raw inputs computes the same logits
as it did on the test split during the search. Text keeps its vocabulary and unknown-token rule in
a :class:`Tokenizer` (strings never enter the network: the model takes token ids).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.errors import ArchsearchError


class ImagePreprocess(nn.Module):
    """Raw images (N, C, H, W), any numeric dtype -> the network's input: /scale, per-channel
    standardisation with the training split's statistics, bilinear resize to ``resolution``."""

    def __init__(self, scale: float, mean: Sequence[float], std: Sequence[float],
                 resolution: Optional[int] = None) -> None:
        super().__init__()
        self.scale = float(scale)
        self.resolution = resolution
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() / self.scale - self.mean) / self.std
        if self.resolution is not None and (x.shape[2] != self.resolution or x.shape[3] != self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        return x

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}, resolution={self.resolution}"


class Tokenizer:
    """Text -> token ids by the corpus's rule (data/text.py): lowercase if asked, words split on
    whitespace (or characters), ids from the training vocabulary, anything else ``unk``."""

    def __init__(self, vocab: Sequence[str], level: str = "word", lowercase: bool = False, unk: str = "<unk>",
                 eos: str = "<eos>") -> None:
        self.vocab, self.level, self.lowercase, self.unk, self.eos = tuple(vocab), level, lowercase, unk, eos
        self.index = {t: i for i, t in enumerate(self.vocab)}

    def tokens(self, text: str) -> list[str]:
        text = text.lower() if self.lowercase else text
        return text.split() if self.level == "word" else list(text.strip())

    def encode(self, text: str) -> list[int]:
        """The ids of one line of text (no end-of-line token: the model predicts what follows)."""
        unk = self.index.get(self.unk, 0)
        return [self.index.get(t, unk) for t in self.tokens(text)]


def build_preprocess(spec: Optional[dict[str, Any]]) -> nn.Module:
    """The module for a checkpoint's ``preprocess`` record (token ids and unknown data pass unchanged)."""
    if spec is None or spec.get("kind") == "tokens":
        return nn.Identity()
    if spec.get("kind") == "image":
        return ImagePreprocess(spec["scale"], spec["mean"], spec["std"], spec.get("resolution"))
    raise ArchsearchError(f"unknown preprocessing kind {spec.get('kind')!r} in the checkpoint (valid: image, tokens)")


def build_tokenizer(spec: Optional[dict[str, Any]]) -> Optional[Tokenizer]:
    if spec is None or spec.get("kind") != "tokens":
        return None
    return Tokenizer(spec["vocab"], spec.get("level", "word"), bool(spec.get("lowercase", False)),
                     spec.get("unk", "<unk>"), spec.get("eos", "<eos>"))
