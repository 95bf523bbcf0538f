"""The found model: the network behind its preprocessing, with the class names and what the search knew.

``archsearch.load_model(path)`` returns a :class:`FoundModel` in eval mode. Called as a module it
takes raw inputs (images as the data source read them, uint8 or float; token ids for text) and
returns logits; :meth:`FoundModel.predict` also takes single images, channel-last arrays and
strings, and returns the predicted classes with their names and probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from archsearch.deploy.preprocess import Tokenizer
from archsearch.errors import DataError


@dataclass
class Predictions:
    """One row per input: the predicted class, its name (None where the data has no names) and
    probability, the ``top`` best classes with theirs, and the logits (for a language model: at the
    last position, the next token)."""

    classes: np.ndarray
    probs: np.ndarray
    top_classes: np.ndarray
    top_probs: np.ndarray
    names: list[Optional[str]]
    logits: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)

    def accuracy(self, labels: Sequence[int]) -> float:
        labels = np.asarray(labels)
        return float((self.classes == labels).mean()) if len(labels) else float("nan")


class FoundModel(nn.Module):
    """``network(preprocess(x))``: raw inputs in, logits out.

    ``input_shape`` is one raw input's shape ((C, H, W) images, (T,) token windows); ``class_names``
    names each class where the data did; ``info`` holds the checkpoint's record (architecture,
    metrics, config, versions). ``tokenizer`` turns text into ids for language models.
    """

    def __init__(self, network: nn.Module, preprocess: nn.Module, input_shape: Sequence[int],
                 class_names: Optional[Sequence[str]] = None, info: Optional[dict[str, Any]] = None,
                 tokenizer: Optional[Tokenizer] = None) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.network = network
        self.input_shape = tuple(int(d) for d in input_shape)
        self.class_names = tuple(class_names) if class_names else None
        self.info = dict(info or {})
        self.tokenizer = tokenizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.preprocess(x))

    @property
    def is_language_model(self) -> bool:
        return self.info.get("task", {}).get("kind") == "language_model"

    # -- inputs ------------------------------------------------------------------------
    def as_batch(self, inputs: Union[np.ndarray, torch.Tensor, Sequence[Any]]) -> torch.Tensor:
        """Raw images as a (N, C, H, W) batch: also accepts one image ((C, H, W), or (H, W) for one
        channel), a batch without the channel axis (N, H, W) and channel-last (N, H, W, C)."""
        if not isinstance(inputs, torch.Tensor):
            arr = np.asarray(inputs)
            if arr.dtype.kind not in "iuf":
                raise DataError(f"inputs must be numeric arrays (uint8, int or float), got dtype {arr.dtype}")
            inputs = torch.as_tensor(arr if arr.flags.writeable else arr.copy())
        x = inputs
        if x.dtype == torch.bool or x.is_complex():
            raise DataError(f"inputs must be numeric arrays (uint8, int or float), got dtype {x.dtype}")
        c, h, w = self.input_shape
        shape = tuple(x.shape)
        if shape[-3:] == (c, h, w) and x.dim() in (3, 4):
            return x if x.dim() == 4 else x.unsqueeze(0)
        if c == 1 and shape[-2:] == (h, w) and x.dim() in (2, 3):
            return x.reshape(-1, 1, h, w)
        if shape[-3:] == (h, w, c) and x.dim() in (3, 4):  # channel-last, as image libraries give it
            x = x if x.dim() == 4 else x.unsqueeze(0)
            return x.permute(0, 3, 1, 2).contiguous()
        raise DataError(f"inputs have shape {shape}; this model expects raw images of shape (N, {c}, {h}, {w}) "
                        f"(or ({c}, {h}, {w}) for one image"
                        f"{', or (N, ' + str(h) + ', ' + str(w) + ')' if c == 1 else ''})")

    def as_token_ids(self, inputs: Any) -> list[torch.Tensor]:
        """Token id sequences from strings (by the corpus's vocabulary) or ids."""
        if isinstance(inputs, str):
            inputs = [inputs]
        if isinstance(inputs, (np.ndarray, torch.Tensor)):
            t = torch.as_tensor(inputs)
            if t.is_floating_point() or t.dim() not in (1, 2):
                raise DataError(f"token ids must be integers of shape (T,) or (N, T), got {t.dtype} {tuple(t.shape)}")
            inputs = [t] if t.dim() == 1 else list(t)
        vocab = len(self.class_names) if self.class_names else None
        out = []
        for item in inputs:
            if isinstance(item, str):
                if self.tokenizer is None:
                    raise DataError("this model has no vocabulary (an old checkpoint): give token ids, not text")
                item = self.tokenizer.encode(item)
            ids = torch.as_tensor(item, dtype=torch.int64).flatten()
            if len(ids) == 0:
                raise DataError("an input has no tokens (an empty line?)")
            if vocab is not None and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
                raise DataError(f"token ids must be in 0..{vocab - 1} (the vocabulary), "
                                f"got {int(ids.min())}..{int(ids.max())}")
            out.append(ids)
        return out

    # -- predictions ---------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, inputs: Any, batch_size: int = 256) -> torch.Tensor:
        """(N, classes) logits of raw inputs; for a language model, the next token's after each sequence."""
        self.eval()
        device = next(self.parameters(), torch.empty(0)).device
        if self.is_language_model:
            return torch.stack([self(ids.unsqueeze(0).to(device))[0, -1].float().cpu()
                                for ids in self.as_token_ids(inputs)])
        x = self.as_batch(inputs)
        if len(x) == 0:
            raise DataError("no inputs")
        return torch.cat([self(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])

    def predict(self, inputs: Any, top: int = 1, batch_size: int = 256) -> Predictions:
        """Predicted classes of raw inputs (see :meth:`as_batch`, :meth:`as_token_ids`) with names and probabilities."""
        logits = self.logits(inputs, batch_size)
        k = max(1, min(int(top), logits.shape[1]))
        probs = torch.softmax(logits, dim=1)
        top_p, top_c = probs.topk(k, dim=1)
        classes = top_c[:, 0].numpy()
        names = [self.class_names[c] if self.class_names else None for c in classes]
        return Predictions(classes, top_p[:, 0].numpy(), top_c.numpy(), top_p.numpy(), names, logits.numpy())
