"""Tests generated from the space registry: every registered space gets all of them."""

from __future__ import annotations

import json

import pytest
import torch

from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces import SPACES, create_space, list_spaces
from archsearch.testing import SpaceSuite, suites

# each space declares its own small options (archsearch.testing builds them); other tests read them here
SMALL_OPTIONS = {name: dict(SPACES.get(name).small_options) for name in list_spaces()}
TASKS = [Task((1, 8, 8), 10), Task((3, 32, 32), 7)]


def space_args(name: str) -> list[str]:
    """CLI arguments selecting space ``name`` with its small test options."""

    args = ["--space", name]
    for key, value in SMALL_OPTIONS.get(name, {}).items():
        args += ["--set", f"space.{key}={json.dumps(value)}"]
    return args


# every registered space passes the shipped conformance suite (archsearch.testing.SpaceSuite)
suites(SpaceSuite, list_spaces(), globals())


def test_chain_string_form_and_errors():
    space = create_space("chain", layers=2)
    arch = space.parse("conv:3:32:relu | sep_conv:5:64:gelu")
    assert str(arch) == "conv:3:32:relu|sep_conv:5:64:gelu"
    with pytest.raises(ParseError, match="expected 2 layers"):
        space.parse("conv:3:32:relu")
    with pytest.raises(ParseError, match=r"op 'wat' is not in the space \(valid: conv"):
        space.parse("wat:3:32:relu|conv:3:32:relu")
    with pytest.raises(ParseError, match="layer 2 .*expected op:kernel:channels:activation"):
        space.parse("conv:3:32:relu|conv:3")
    with pytest.raises(ParseError, match="must be positive integers"):
        space.parse("conv:x:32:relu|conv:3:32:relu")
    with pytest.raises(ParseError, match="kernel 7 is not in the space"):
        space.parse("conv:7:32:relu|conv:3:32:relu")


def test_chain_pool_and_identity_keep_width_and_downsampling_stops_at_small_maps():
    space = create_space("chain", layers=3, reductions=2)
    arch = space.parse("conv:3:16:relu|max_pool:3:96:relu|identity:1:64:tanh")
    model = space.build(arch, Task((1, 8, 8), 10))
    assert model.head.in_features == 16  # pooling/identity did not change width
    n_down = sum(isinstance(m, torch.nn.MaxPool2d) and m.kernel_size == 2 for m in model.modules())
    assert n_down == 2
    tiny = space.build(arch, Task((1, 4, 4), 10))
    assert sum(isinstance(m, torch.nn.MaxPool2d) and m.kernel_size == 2 for m in tiny.modules()) == 1


def test_chain_options_are_validated():
    with pytest.raises(ConfigError, match="unknown 'bogus' .*valid: conv"):
        create_space("chain", ops=["conv", "bogus"])
    with pytest.raises(ConfigError, match="space.layers"):
        create_space("chain", layers=0)
    with pytest.raises(ConfigError, match="must be odd"):
        create_space("chain", kernels=[2])
    with pytest.raises(ConfigError, match="unknown option 'width'"):
        create_space("chain", width=3)
    assert "chain" in SPACES
