"""The architecture-template space (MnasNet-style stages): genotype, skeleton, blocks, options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import archsearch.spaces.template  # noqa: F401  (registers the space)
from archsearch.core import Task
from archsearch.errors import ConfigError, ParseError
from archsearch.spaces import create_space
from archsearch.spaces.template import Block, SqueezeExcite, TemplateArch, TemplateNet

DIGITS, CIFAR = Task((1, 8, 8), 10), Task((3, 32, 32), 7)


def stage_maps(model: TemplateNet, task: Task) -> list[tuple[int, int, int]]:
    """(channels, H, W) after each stage for one forward pass."""
    shapes: list[tuple[int, int, int]] = []
    hooks = [s.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for s in model.stages]
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, *task.input_shape))
    for h in hooks:
        h.remove()
    return shapes


def test_string_form_roundtrip_and_decisions():
    space = create_space("template", stages=2, se=True)
    arch = space.parse(" mbconv6:k3:d2:w1.0 | resblock:k5:d1:w0.75:se ")
    assert str(arch) == "mbconv6:k3:d2:w1.0|resblock:k5:d1:w0.75:se"
    assert arch.stages[1].se and not arch.stages[0].se and arch.stages[1].width == 0.75
    assert [d.name for d in space.decisions()[:5]] == [
        "stage0.block", "stage0.kernel", "stage0.depth", "stage0.width", "stage0.se"]
    assert space.size() == (5 * 2 * 4 * 4 * 2) ** 2
    # without se the decision does not exist and ':se' is rejected
    plain = create_space("template", stages=2)
    assert len(plain.decisions()) == 8
    with pytest.raises(ParseError, match="needs space.se=true"):
        plain.parse("conv:k3:d1:w1.0|conv:k3:d1:w1.0:se")


@pytest.mark.parametrize("text, message", [
    ("conv:k3:d1:w1.0", "expected 4 stages"),
    ("conv:k3:d1:w1.0|conv:k3:d1|conv:k3:d1:w1.0|conv:k3:d1:w1.0", r"stage 2 .*expected block:kK:dD:wW"),
    ("wat:k3:d1:w1.0|conv:k3:d1:w1.0|conv:k3:d1:w1.0|conv:k3:d1:w1.0", r"block 'wat' is not in the space \(valid: conv"),
    ("conv:k7:d1:w1.0|conv:k3:d1:w1.0|conv:k3:d1:w1.0|conv:k3:d1:w1.0", "kernel 7 is not in the space"),
    ("conv:k3:d9:w1.0|conv:k3:d1:w1.0|conv:k3:d1:w1.0|conv:k3:d1:w1.0", "depth 9 is not in the space"),
    ("conv:k3:d1:w0.3|conv:k3:d1:w1.0|conv:k3:d1:w1.0|conv:k3:d1:w1.0", "width 0.3 is not in the space"),
    ("conv:k3:d1:c16|conv:k3:d1:w1.0|conv:k3:d1:w1.0|conv:k3:d1:w1.0", "channel count c16 but this space uses width"),
])
def test_parse_errors_are_one_line(text, message):
    with pytest.raises(ParseError, match=message) as info:
        create_space("template").parse(text)
    assert "\n" not in str(info.value)


def test_absolute_channels_mode():
    space = create_space("template", stages=2, channels=[8, 12])
    arch = space.parse("conv:k3:d1:c8|sep_conv:k5:d2:c12")
    assert str(arch) == "conv:k3:d1:c8|sep_conv:k5:d2:c12"
    assert space.decisions()[3].name == "stage0.channels"
    with pytest.raises(ParseError, match="multiplier w1.0 but this space uses channels"):
        space.parse("conv:k3:d1:w1.0|conv:k3:d1:c8")
    model = space.build(arch, DIGITS)
    assert [c for c, _, _ in stage_maps(model, DIGITS)] == [8, 12]
    # a channel count and a multiplier of equal value stay distinct in JSON and strings
    assert space.from_dict(json.loads(arch.to_json())) == arch
    assert arch.to_dict()["stages"][0] == {"block": "conv", "kernel": 3, "depth": 1, "channels": 8, "se": False}


def test_json_form_is_checked():
    space = create_space("template", stages=1)
    arch = space.parse("mbconv3:k5:d3:w1.25")
    assert arch.to_dict() == {"stages": [{"block": "mbconv3", "kernel": 5, "depth": 3, "width": 1.25, "se": False}]}
    for bad in ({"stages": []}, {"stages": [{"block": "conv", "kernel": 3, "depth": 1}]},
                {"stages": [{"block": "conv", "kernel": "3", "depth": 1, "width": 1.0}]},
                {"stages": [{"block": "conv", "kernel": 3, "depth": 1, "width": 1.0, "channels": 8}]},
                {"stages": [{"block": "conv", "kernel": 3, "depth": 1, "width": 1.0, "se": "no"}]},
                {"stages": "conv"}, {}):
        with pytest.raises(ParseError):
            space.from_dict(bad)


def test_widths_scale_base_widths_and_downsampling_stops_at_2x2():
    space = create_space("template", widths=[0.5, 1.0])
    arch = space.parse("conv:k3:d1:w1.0|conv:k3:d1:w0.5|mbconv3:k3:d1:w1.0|conv:k3:d2:w0.5")
    # base widths 16, 32, 64, 128 (doubling), times the multiplier
    assert stage_maps(space.build(arch, CIFAR), CIFAR) == [(16, 32, 32), (16, 16, 16), (64, 8, 8), (64, 4, 4)]
    assert stage_maps(space.build(arch, DIGITS), DIGITS) == [(16, 8, 8), (16, 4, 4), (64, 2, 2), (64, 2, 2)]
    # tiny and non-square inputs never go below 2x2 (nor below their own size)
    assert [s[1:] for s in stage_maps(space.build(arch, Task((1, 3, 5), 2)), Task((1, 3, 5), 2))] == [(3, 5)] * 4
    # an ImageNet-size input gets a stride-2 stem
    big = space.build(arch, Task((3, 64, 64), 2))
    assert big.stem[0].stride == (2, 2)


def test_explicit_skeleton_with_strides():
    space = create_space("template", stages=[24, [40, 1], [80, 2]], stem_channels=8, widths=[1.0])
    assert space.skeleton == [(24, 1), (40, 1), (80, 2)]
    arch = space.parse("conv:k3:d1:w1.0|conv:k3:d1:w1.0|conv:k3:d1:w1.0")
    assert stage_maps(space.build(arch, CIFAR), CIFAR) == [(24, 32, 32), (40, 32, 32), (80, 16, 16)]


def test_blocks_depth_kernel_residuals_and_se():
    space = create_space("template", stages=2, se=True, widths=[1.0])
    arch = space.parse("mbconv6:k5:d3:w1.0:se|resblock:k3:d2:w1.0")
    model = space.build(arch, CIFAR)
    first, second = list(model.stages[0]), list(model.stages[1])
    assert len(first) == 3 and len(second) == 2 and all(isinstance(b, Block) for b in first + second)
    # stem 16 -> stage 16 at stride 1: every mbconv layer is residual; 6x expansion, depthwise 5x5
    assert all(isinstance(b.shortcut, torch.nn.Identity) for b in first)
    dw = first[0].body[1][0]
    assert dw.kernel_size == (5, 5) and dw.groups == dw.in_channels == 96
    assert isinstance(first[0].body[-1][-1], torch.nn.BatchNorm2d)  # linear projection: no activation
    assert sum(isinstance(m, SqueezeExcite) for m in model.stages[0].modules()) == 3
    assert not any(isinstance(m, SqueezeExcite) for m in model.stages[1].modules())
    # resblock: the first layer changes width and stride -> projection shortcut; the second is identity
    assert isinstance(second[0].shortcut, torch.nn.Sequential) and second[0].shortcut[0].stride == (2, 2)
    assert isinstance(second[1].shortcut, torch.nn.Identity)
    out = model(torch.randn(2, *CIFAR.input_shape))
    out.sum().backward()
    assert out.shape == (2, 7)


@pytest.mark.parametrize("block", ["conv", "mbconv3", "mbconv6", "sep_conv", "resblock"])
def test_every_block_builds_on_small_maps(block):
    space = create_space("template", stages=3, blocks=[block], widths=[0.25], depths=[1, 2], se=True)
    for arch in (space.sample(np.random.default_rng(s)) for s in range(2)):
        assert all(st.block == block for st in arch.stages)
        out = space.build(arch, DIGITS)(torch.randn(2, 1, 8, 8))
        assert out.shape == (2, 10)


def test_mutation_and_sampling_stay_in_the_restricted_space():
    space = create_space("template", stages=3, blocks=["conv", "sep_conv"], kernels=[3], depths=[1, 2],
                         widths=[0.5])
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = space.mutate(space.sample(rng), rng)
        assert all(s.block in ("conv", "sep_conv") and s.kernel == 3 and s.width == 0.5 for s in arch.stages)
        assert space.validate(arch) == arch


def test_diagram_shows_stem_stages_and_head():
    space = create_space("template", stages=3, se=True)
    arch = space.parse("mbconv6:k3:d2:w1.0|conv:k5:d1:w0.75:se|resblock:k3:d4:w0.5")
    d = space.diagram(arch)
    labels = dict(d.nodes)
    assert list(labels) == ["stem", "stage1", "stage2", "stage3", "head"]
    assert "mbconv6" in labels["stage1"] and "k3 x2" in labels["stage1"] and "16 ch" in labels["stage1"]
    assert "SE" in labels["stage2"] and "24 ch" in labels["stage2"] and "stride 2" in labels["stage2"]
    assert [(s, t) for s, t, _ in d.edges] == [("stem", "stage1"), ("stage1", "stage2"), ("stage2", "stage3"),
                                              ("stage3", "head")]
    assert d.edges[-1][2] == "32 ch"


@pytest.mark.parametrize("options, message", [
    ({"stages": 0}, "space.stages must be an integer in 1..8"),
    ({"stages": 9}, "space.stages"),
    ({"stages": [16, [32, 3]]}, r"space.stages entry 2 .*stride 1 or 2"),
    ({"stages": [[16, 2.0], [32, 2.0]]}, r"space.stages entry 1 .*integer stride"),
    ({"stages": [[16, True]]}, r"space.stages entry 1 .*integer stride"),
    ({"stages": [16.0, 32]}, r"space.stages entry 1 must be a base width"),
    ({"stages": "four"}, "space.stages"),
    ({"blocks": ["conv", "mbconv9"]}, r"unknown 'mbconv9' \(valid: conv, mbconv3"),
    ({"blocks": []}, "space.blocks must be a non-empty list"),
    ({"kernels": [3, 4]}, "must be odd"),
    ({"depths": [0, 1]}, r"space.depths must be a non-empty list of integers in 1\.\.32"),
    ({"depths": [1, 33]}, r"space.depths must be a non-empty list of integers in 1\.\.32"),
    ({"kernels": [3, 3]}, "space.kernels lists a value twice"),
    ({"widths": [0.5, -1.0]}, "space.widths must be a non-empty list of multipliers"),
    ({"widths": [0.5, 0.5]}, "space.widths lists a value twice"),
    ({"widths": [1, 1.0]}, "space.widths lists a value twice"),
    ({"widths": [float("nan")]}, "space.widths must be a non-empty list of multipliers"),
    ({"widths": [1.0], "channels": [8]}, "set only one"),
    ({"channels": [8, 0]}, r"space.channels must be a non-empty list of integers in 1\.\.4096"),
    ({"se": "yes"}, "space.se must be true or false"),
    ({"stem_channels": 0}, "space.stem_channels"),
    ({"width": 1}, "unknown option 'width'"),
])
def test_options_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        create_space("template", **options)


def test_every_decision_vector_is_a_distinct_architecture():
    space = create_space("template", stages=1, se=True, kernels=[3, 5], depths=[1, 2], widths=[0.5, 1.0])
    archs = {space.decode([b, k, d, w, s]) for b in range(5) for k in range(2) for d in range(2)
             for w in range(2) for s in range(2)}
    assert len(archs) == space.size() == len({str(a) for a in archs})
    assert all(isinstance(a, TemplateArch) for a in archs)


@pytest.mark.parametrize("widths", [[1 / 3, 0.5], [1.25e-05, 1.0], [0.1 + 0.2, 2.0], [1e-300, 16]])
def test_every_width_multiplier_prints_in_a_form_that_parses_back(widths):
    space = create_space("template", stages=2, widths=widths)
    for w in space.widths:
        arch = space.parse(f"conv:k3:d1:w{w!r}|conv:k3:d1:w{w!r}")
        assert arch.stages[0].width == w and str(arch).startswith(f"conv:k3:d1:w{w!r}|")
    for arch in (space.sample(np.random.default_rng(s)) for s in range(10)):
        text = str(arch)
        assert space.parse(text) == arch and str(space.parse(text)) == text
        assert space.from_dict(json.loads(arch.to_json())) == arch


@pytest.mark.parametrize("token, message", [
    ("w1e999", "not a positive finite number"),   # overflows to inf
    ("w1e-999", "not a positive finite number"),  # underflows to 0
    ("w" + "1" * 21, "expected block:kK:dD:wW"),  # longer than any float's repr
    ("w1.5e", "expected block:kK:dD:wW"),
])
def test_width_tokens_that_cannot_print_back_are_rejected(token, message):
    with pytest.raises(ParseError, match=message):
        TemplateArch.parse(f"conv:k3:d1:{token}")


def test_decode_rejects_out_of_range_indices():
    space = create_space("template", stages=1, se=True)
    assert space.decode([0, 1, 2, 3, 1]).stages[0].se
    for bad, message in (([-1, 0, 0, 0, 0], r"stage0.block: index -1 is out of range 0..4"),
                         ([99, 0, 0, 0, 0], r"stage0.block: index 99"),
                         ([0, 0, 0, 0, 2], r"stage0.se: index 2 is out of range 0..1"),
                         ([0, 0, 0, 4, 0], r"stage0.width: index 4"),
                         ([0, 0, 0, 0, True], "stage0.se: index True"),
                         ([0, 0, 0, 0.0, 0], "stage0.width"),
                         ([0, 0, 0, 0], "expected 5 decisions, got 4")):
        with pytest.raises(ParseError, match=message):
            space.decode(bad)
    # numpy integers (e.g. from an encoder's argmax) are fine
    assert space.decode(np.array([1, 0, 0, 0, 0])) == space.decode([1, 0, 0, 0, 0])


def test_build_needs_an_image_task():
    space = create_space("template", stages=2)
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"space 'template' builds image networks and needs input shape \(C, H, W\)"):
        space.build(arch, Task((16,), 2))
