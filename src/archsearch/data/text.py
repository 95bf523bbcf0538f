"""Plain-text corpora for language modelling: ``--dataset text:DIR``.

DIR holds three UTF-8 files, ``train.txt``, ``valid.txt`` and ``test.txt``, or ``NAME.train.txt``,
``NAME.valid.txt`` and ``NAME.test.txt`` (Penn Treebank's ``ptb.train.txt`` layout); exactly one
file per split. Text is read line by line (blank lines are skipped): words split on whitespace
(``level: word``) or characters (``level: char``), and every line ends with an ``<eos>`` token.
The vocabulary comes from the training file only: ``<unk>`` (id 0) and ``<eos>`` (id 1), then
the training tokens by decreasing count (ties in sorted order), dropping those seen fewer than
``min_count`` times and keeping at most ``max_vocab`` entries in all; anything else, in any
split, reads as ``<unk>`` (a literal ``<unk>`` in the text, as PTB writes it, is the same token).

Each split's running token stream is cut into non-overlapping windows of ``seq_len`` tokens:
``x[i] = s[i*T : (i+1)*T]`` and ``y[i] = s[i*T+1 : (i+1)*T+1]``, the next token at every
position (the last partial window is dropped). The result is the usual :class:`Splits` with
(N, T) int64 inputs and targets and ``kind="language_model"``, so the task is
``Task((T,), vocabulary size, "language_model")``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional

import numpy as np
import torch

from archsearch.data.base import DatasetSource, Split, Splits, register_dataset
from archsearch.errors import DataError
from archsearch.options import option

UNK, EOS = "<unk>", "<eos>"
LEVELS = ("word", "char")
SPLITS = ("train", "valid", "test")


@dataclass
class TextSplits(Splits):
    """:class:`Splits` of a text corpus, with its vocabulary (token of each id)."""

    vocab: tuple[str, ...] = field(default_factory=tuple)


def find_split_files(folder: str) -> dict[str, str]:
    """``{"train": path, "valid": path, "test": path}``; a DataError unless each has exactly one file."""
    names = sorted(f for f in os.listdir(folder) if os.path.isfile(os.path.join(folder, f)))
    out: dict[str, str] = {}
    for split in SPLITS:
        found = [f for f in names if f == f"{split}.txt" or f.endswith(f".{split}.txt")]
        if len(found) != 1:
            shown = ", ".join(names[:12]) + (f", ... ({len(names)} files)" if len(names) > 12 else "")
            what = f"{len(found)}: {', '.join(found)}" if found else "none"
            raise DataError(f"{folder}: expected exactly one {split} file ({split}.txt or NAME.{split}.txt), found "
                            f"{what} (files in the folder: {shown or 'none'})")
        out[split] = os.path.join(folder, found[0])
    return out


def read_tokens(path: str, level: str = "word", lowercase: bool = False) -> list[str]:
    """The token stream of one file: each non-blank line's words (or characters) and ``<eos>``."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty (no text)")
    if lowercase:
        text = text.lower()
    tokens: list[str] = []
    for line in text.splitlines():
        if level == "word":
            words = line.split()
        else:
            stripped = line.strip()
            words = list(stripped) if stripped else []
        if words:
            tokens += words
            tokens.append(EOS)
    if not tokens:  # unreachable after the strip() check, kept for clarity of the contract
        raise DataError(f"{path}: no tokens")
    return tokens


def build_vocab(tokens: list[str], min_count: int = 1, max_vocab: Optional[int] = None) -> list[str]:
    """``<unk>``, ``<eos>``, then tokens by decreasing count (ties sorted), filtered and capped."""
    counts = Counter(t for t in tokens if t not in (UNK, EOS))
    ranked = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
    vocab = [UNK, EOS] + ranked
    return vocab[:max_vocab] if max_vocab is not None else vocab


def windows(ids: torch.Tensor, seq_len: int, what: str) -> Split:
    """Non-overlapping (N, T) input windows of a token stream and their next-token targets."""
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise DataError(f"{what}: {len(ids)} tokens, too few for one window of seq_len={seq_len} plus its "
                        f"next-token target; lower dataset.seq_len")
    return Split(ids[: n * seq_len].view(n, seq_len).clone(), ids[1 : n * seq_len + 1].view(n, seq_len).clone())


@register_dataset("text")
class TextCorpus(DatasetSource):
    """A folder of train/valid/test text files for language modelling (see the module docstring)."""

    @dataclass(frozen=True)
    class Options(DatasetSource.Options):
        level: str = option("word", "tokens are words (split on whitespace) or characters", choices=LEVELS)
        seq_len: int = option(35, "tokens per window (the model's input length)", low=1)
        min_count: int = option(1, "tokens seen fewer times in the training file read as <unk>", low=1)
        max_vocab: Optional[int] = option(None, "vocabulary size cap, <unk> and <eos> included (null: no cap)",
                                          low=3)
        lowercase: bool = option(False, "lowercase the text before splitting it")

    path_is = "a folder"
    small_options: ClassVar[Mapping[str, Any]] = {"seq_len": 8}
    opts: Options

    def load(self, seed: int = 0) -> TextSplits:
        """The three splits as windows (``seed`` is unused: nothing here is random)."""
        assert self.opts.path is not None  # needs_path
        folder = os.path.expanduser(os.fspath(self.opts.path))
        if not os.path.isdir(folder):
            raise DataError(f"text corpus folder not found: {folder}" if not os.path.exists(folder)
                            else f"{folder}: expected a folder of train/valid/test .txt files, got a file")
        files = find_split_files(folder)
        opts = self.opts
        streams = {s: read_tokens(files[s], opts.level, opts.lowercase) for s in SPLITS}
        vocab = build_vocab(streams["train"], opts.min_count, opts.max_vocab)
        index = {t: i for i, t in enumerate(vocab)}
        splits = {s: windows(torch.tensor([index.get(t, 0) for t in streams[s]], dtype=torch.int64),
                             opts.seq_len, files[s]) for s in SPLITS}
        return TextSplits(splits["train"], splits["valid"], splits["test"], num_classes=len(vocab),
                          name="text", kind="language_model", preprocess=self.preprocessing(vocab),
                          class_names=tuple(vocab), vocab=tuple(vocab))

    def preprocessing(self, vocab: list[str]) -> dict[str, Any]:
        """How text becomes token ids, kept with the found model (deploy/preprocess.py applies it)."""
        return {"kind": "tokens", "level": self.opts.level, "lowercase": self.opts.lowercase, "vocab": list(vocab),
                "unk": UNK, "eos": EOS, "seq_len": self.opts.seq_len}

    def raw_test(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The test windows: token ids are this source's raw form."""
        test = self.load(seed).test
        return test.x.numpy(), test.y.numpy()
