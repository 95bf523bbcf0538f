"""`archsearch describe`: canonical string, sizes, layer summary, diagram, bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from archsearch.core import Task
from archsearch.describe import describe, layer_summary
from archsearch.spaces import create_space, list_spaces

CHAIN = "conv:3:32:relu | sep_conv:5:64:gelu|max_pool:3:64:relu|identity:3:32:relu|conv:1:16:tanh|conv:3:96:relu"


def test_describe_text_reports_canonical_string_params_flops_and_layers(run_cli):
    code, out, err = run_cli("describe", "--space", "chain", "--arch", CHAIN)
    assert code == 0, err
    space = create_space("chain")
    info = describe(space, space.parse(CHAIN), Task((3, 32, 32), 10))
    assert f"arch    {CHAIN.replace(' ', '')}" in out
    assert f"params  {info['params']:,}" in out and f"FLOPs   {info['flops']:,}" in out
    assert "body.1" in out and "head" in out


def test_describe_json_has_the_documented_keys_and_honours_options(run_cli, tmp_path):
    code, out, err = run_cli("describe", "--space", "chain", "--arch", "conv:3:8:relu|conv:3:8:relu",
                             "--set", "space.layers=2", "--set", "space.reductions=1", "--set", "space.channels=[8]",
                             "--input-shape", "1,8,8", "--classes", "4", "--json",
                             "--diagram", str(tmp_path / "d.dot"))
    assert code == 0, err
    info = json.loads(out)
    assert {"arch", "params", "params_without_aux", "flops", "layers"} <= set(info)
    # stem 1->32 conv3x3 + BN, two conv3x3 layers + BN, linear 8->4
    expected = (9 * 32 + 64) + (9 * 32 * 8 + 16) + (9 * 8 * 8 + 16) + (8 * 4 + 4)
    assert info["params"] == info["params_without_aux"] == expected
    assert info["input_shape"] == [1, 8, 8] and info["classes"] == 4
    assert (tmp_path / "d.dot").read_text().startswith("digraph")
    assert sum(row["params"] for row in info["layers"]) == expected


@pytest.mark.parametrize("args, message", [
    (["--space", "chain", "--arch", "conv:3:32"], "expected op:kernel:channels:activation"),
    (["--space", "nope", "--arch", "x"], "unknown space 'nope'"),
    (["--space", "chain", "--arch", CHAIN, "--input-shape", "3,x,32"], "--input-shape expects"),
    (["--space", "chain", "--arch", CHAIN, "--classes", "0"], "--classes must be"),
    (["--space", "chain", "--arch", CHAIN, "--set", "budget.trials=3"], "describe --set takes space.KEY"),
    (["--space", "chain", "--arch", CHAIN, "--set", "space.bogus=1"], "unknown option 'bogus'"),
    (["--space", "chain", "--arch", CHAIN, "--diagram", "x.jpg"], "unknown format '.jpg'"),
])
def test_describe_bad_input_is_one_line_exit_2(run_cli, args, message):
    code, out, err = run_cli("describe", *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("name", list_spaces())
def test_layer_summary_covers_every_parameter(name):
    from tests.test_spaces import SMALL_OPTIONS

    space = create_space(name, **SMALL_OPTIONS.get(name, {}))
    model = space.build(space.sample(np.random.default_rng(0)), Task((3, 16, 16), 5))
    rows = layer_summary(model, (3, 16, 16))
    assert sum(r["params"] for r in rows) == sum(p.numel() for p in model.parameters())


def test_diagram_uses_graphviz_when_installed(tmp_path, monkeypatch):
    """With a `dot` on PATH the DOT text goes to it (a fake here that records what it got)."""
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n# args: -Tsvg -o FILE\ncat > "$3.input"\necho "<svg/>" > "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    space = create_space("chain")
    diagram = space.diagram(space.parse(CHAIN))
    out = diagram.render(tmp_path / "a.svg")
    assert out.read_text() == "<svg/>\n"
    assert (tmp_path / "a.svg.input").read_text() == diagram.to_dot()
