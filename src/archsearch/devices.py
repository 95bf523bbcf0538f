"""Device names from config (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``), checked up front.

A device this machine does not have is refused when the config is read, with one line naming
the option, rather than failing every trial (or the supernet) later.
"""

from __future__ import annotations

import torch

from archsearch.errors import ConfigError

VALID = "auto, cpu, cuda, cuda:N or mps"


def check_device(device: object, key: str) -> torch.device:
    """The device ``device`` names (``auto``: CUDA when present, else CPU); ``key`` names the option."""
    if not isinstance(device, str):
        raise ConfigError(f"{key} must be one of {VALID} (got {device!r})")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{key} must be one of {VALID} (got {device!r})") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index is not None and dev.index >= count):
            raise ConfigError(f"{key} {device!r}: this machine has {count} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key} 'mps': MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{key} must be one of {VALID} (got {device!r})")
    return dev


def resolve_device(device: str) -> torch.device:
    """``auto`` resolved; other names as given (already checked by :func:`check_device`)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
