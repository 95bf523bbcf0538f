"""Diagrams people can read: layered layouts checked as geometry, for every space's samples,
and renders with matplotlib (always) and graphviz (when its ``dot`` is installed)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from archsearch.errors import ConfigError
from archsearch.spaces import SPACES, create_space
from archsearch.spaces.diagram import Box, Diagram
from tests.test_spaces import SMALL_OPTIONS

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="graphviz's 'dot' is not installed "
                                                   "(Debian/Ubuntu: apt-get install graphviz); matplotlib path only")
CASES = [pytest.param(name, size, id=f"{name}-{size}") for name in SPACES.names() for size in ("small", "default")]


def make_space(name: str, size: str):
    return create_space(name, **(SMALL_OPTIONS.get(name, {}) if size == "small" else {}))


def samples(space, n: int = 4, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def overlap(a: Box, b: Box) -> bool:
    """Interiors intersect (written out here rather than trusting Box.overlaps)."""
    return min(a.x + a.width, b.x + b.width) > max(a.x, b.x) and min(a.y + a.height, b.y + b.height) > max(a.y, b.y)


def inside(a: Box, outer: Box) -> bool:
    return (a.x >= outer.x and a.y >= outer.y and a.x + a.width <= outer.x + outer.width
            and a.y + a.height <= outer.y + outer.height)


def check_layout(d: Diagram):
    """The readability rules, checked on the computed layout."""
    lay = d.layout()
    figure = Box(0.0, 0.0, lay.width, lay.height)
    nodes = list(lay.nodes.values())
    assert sorted(lay.nodes) == sorted(n for n, _ in d.nodes)
    for i, a in enumerate(nodes):
        assert a.box.width > 0 and a.box.height > 0 and inside(a.box, figure), a.id
        for b in nodes[i + 1:]:
            assert not overlap(a.box, b.box), f"nodes {a.id} and {b.id} overlap"
    assert len(lay.edges) == len(d.edges)
    labels = [e for e in lay.edges if e.label]
    assert len(labels) == sum(1 for *_, label in d.edges if label)
    for k, e in enumerate(labels):
        assert e.label_box is not None and inside(e.label_box, figure)
        for n in nodes:
            assert not overlap(e.label_box, n.box), f"label {e.label} of {e.src}->{e.dst} sits on node {n.id}"
        for f in labels[k + 1:]:
            assert not overlap(e.label_box, f.label_box), f"labels of {e.src}->{e.dst} and {f.src}->{f.dst} overlap"
    assert (lay.title_box is not None) == bool(d.title)
    if lay.title_box is not None:
        assert inside(lay.title_box, figure), "the title is cut"
    for g in lay.groups:
        assert inside(g.frame, figure) and inside(g.caption, g.frame)
        assert not any(overlap(g.caption, n.box) for n in nodes)
    # left to right: an edge's target column is right of its source's (back edges of cycles reversed)
    for e in lay.edges:
        if e.src != e.dst:
            a, b = lay.nodes[e.src].box, lay.nodes[e.dst].box
            assert (b.x > a.x + a.width) if not e.reversed else (a.x > b.x + b.width), (e.src, e.dst)
            assert lay.nodes[e.dst].layer != lay.nodes[e.src].layer
    # edges run between boxes, not across them
    for e in lay.edges:
        for x, y in e.sample(10):
            for n in nodes:
                if n.id not in (e.src, e.dst):
                    b = n.box
                    assert not (b.x + 0.5 < x < b.x + b.width - 0.5 and b.y + 0.5 < y < b.y + b.height - 0.5), \
                        f"edge {e.src}->{e.dst} crosses node {n.id}"
    assert lay.problems() == []
    return lay


def check_png(path, lay=None) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    with Image.open(path) as im:
        im.load()
        gray = np.asarray(im.convert("L"))
    assert gray.shape[0] > 20 and gray.shape[1] > 20
    dark = (gray < 160).mean()
    assert 0.002 < dark < 0.5, f"PNG looks blank or solid ({dark:.4f} dark)"
    if lay is not None:  # the figure is the layout's size (aspect ratio kept)
        assert abs(gray.shape[1] / gray.shape[0] - lay.width / lay.height) < 0.05 * lay.width / lay.height + 0.02


def check_svg_text(text: str) -> ET.Element:
    assert "<svg" in text
    root = ET.fromstring(text[text.index("<svg"):])
    assert root.tag.endswith("svg") and len(list(root.iter())) > 10
    return root


# -- every space: layout rules, matplotlib and graphviz renders ------------------------------
@pytest.mark.parametrize("name, size", CASES)
def test_layout_is_readable_for_sampled_architectures(name, size):
    space = make_space(name, size)
    for arch in samples(space, 4, seed=3):
        check_layout(space.diagram(arch))


@pytest.mark.parametrize("name, size", CASES)
def test_matplotlib_renders_png_and_svg(name, size, tmp_path):
    space = make_space(name, size)
    d = space.diagram(samples(space, 1, seed=11)[0])
    lay = check_layout(d)
    check_png(d.render(tmp_path / "a.png", engine="matplotlib"), lay)
    svg = d.render(tmp_path / "a.svg", engine="matplotlib").read_text()
    check_svg_text(svg)
    assert svg.lstrip().startswith("<?xml")
    if size == "small":
        inline = d.svg(engine="matplotlib")
        assert inline.startswith("<svg") and inline.rstrip().endswith("</svg>")
        check_svg_text(inline)
        assert (tmp_path / "a.pdf").name == d.render(tmp_path / "a.pdf", engine="matplotlib").name
        assert (tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"


@needs_dot
@pytest.mark.parametrize("name, size", CASES)
def test_graphviz_renders_png_and_svg(name, size, tmp_path):
    space = make_space(name, size)
    d = space.diagram(samples(space, 1, seed=11)[0])
    check_png(d.render(tmp_path / "a.png", engine="graphviz"))
    root = check_svg_text(d.render(tmp_path / "a.svg", engine="graphviz").read_text())
    texts = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    first_label = next(label for _, label in d.nodes)
    assert first_label.split("\n")[0].split()[0] in texts
    inline = d.svg(engine="graphviz")
    assert inline.startswith("<svg") and "graphviz" not in inline.split(">", 1)[0].lower()
    check_svg_text(inline)
    assert d.render(tmp_path / "auto.svg").read_text() == d.render(tmp_path / "g.svg", engine="graphviz").read_text()


def test_rendered_text_fits_inside_its_box():
    """The boxes are sized from the text as matplotlib draws it: no label spills out of its box."""
    for name, options in (("darts", {}), ("skip_chain", {"strides": [1, 2]}), ("rnn_cell", {"leaves": 2}),
                          ("hierarchical", {})):
        space = create_space(name, **options)
        d = space.diagram(samples(space, 1, seed=5)[0])
        lay = d.layout()
        key = lambda text, box: (text, round(box.center[0], 2), round(box.center[1], 2))  # noqa: E731
        boxes = {key("\n".join(n.lines), n.box): n.box for n in lay.nodes.values()}
        boxes.update({key("\n".join(e.label), e.label_box): e.label_box for e in lay.edges if e.label})
        fig = d._figure(lay)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        inverse = ax.transData.inverted()
        checked = 0
        for text in ax.texts:  # every text, the title and the captions included, is inside the figure
            (x0, y0), (x1, y1) = inverse.transform(text.get_window_extent(renderer).get_points())
            assert -0.5 <= min(x0, x1) and max(x0, x1) <= lay.width + 0.5, text.get_text()
            assert -0.5 <= min(y0, y1) and max(y0, y1) <= lay.height + 0.5, text.get_text()
            x, y = text.get_position()
            box = boxes.get((text.get_text(), round(x, 2), round(y, 2)))
            if box is None:
                continue
            (x0, y0), (x1, y1) = inverse.transform(text.get_window_extent(renderer).get_points())
            assert box.x - 0.5 <= min(x0, x1) and max(x0, x1) <= box.x + box.width + 0.5, text.get_text()
            assert box.y - 1.0 <= min(y0, y1) and max(y0, y1) <= box.y + box.height + 1.0, text.get_text()
            checked += 1
        assert checked == len(boxes)


# -- what the space diagrams show ---------------------------------------------------------
def test_nb201_cell_is_four_nodes_in_four_layers():
    space = create_space("nb201")
    archs = samples(space, 6, seed=1) + [space.parse("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")]
    for arch in archs:
        d = space.diagram(arch)
        lay = check_layout(d)
        assert len(lay.nodes) == 4
        assert [lay.nodes[f"node{i}"].layer for i in range(4)] == [0, 1, 2, 3]
        xs = [lay.nodes[f"node{i}"].box.x for i in range(4)]
        assert xs == sorted(xs) and len(set(xs)) == 4
        assert len(d.edges) == sum(op != "none" for op in arch.ops)  # 'none' edges are left out
    sparse = space.diagram(archs[-1])
    assert "5 'none' edges not drawn" in sparse.title
    assert '"node1" -> "node2" [style=invis' in sparse.to_dot()  # graphviz keeps the four columns too


def test_chain_diagram_shows_every_reduction():
    space = create_space("chain", layers=6, channels=[16, 32], stem_channels=8, reductions=2)
    arch = space.parse("conv:3:16:relu|max_pool:3:16:relu|conv:3:32:gelu|identity:1:16:relu|sep_conv:5:16:silu|"
                       "avg_pool:3:32:tanh")
    d = space.diagram(arch)
    path, node = ["input"], "input"
    nexts = {s: t for s, t, _ in d.edges}
    while node in nexts:
        node = nexts[node]
        path.append(node)
    assert path == ["input", "stem", "layer0", "layer1", "reduce1", "layer2", "layer3", "reduce3", "layer4",
                    "layer5", "head"]
    labels = dict(d.nodes)
    assert "max-pool 2x2" in labels["reduce1"] and "/2" in labels["reduce1"] and "/4" in labels["reduce3"]
    assert "16 ch" in labels["layer1"] and "32 ch, /2" in labels["layer3"]  # pool/identity keep the width
    lay = check_layout(d)
    assert [lay.nodes[n].layer for n in path] == list(range(len(path)))
    none = create_space("chain", layers=3, channels=[8], reductions=0)
    assert not any(n.startswith("reduce") for n, _ in none.diagram(none.sample(np.random.default_rng(0))).nodes)


def test_skip_chain_and_template_show_strides_and_sizes():
    space = create_space("skip_chain", layers=4, kernels=[3], filters=[8], strides=[1, 2], stem_channels=4)
    d = space.diagram(space.parse("conv:3x3:8:s2|conv:3x3:8<-0|conv:3x3:8<-1|conv:3x3:8<-0,2"))
    labels = dict(d.nodes)
    assert "stride 2" in labels["L0"] and "out /2" in labels["L0"]
    assert "inputs pooled" in labels["L3"] and "out /4" in labels["L3"]
    check_layout(d)
    template = create_space("template", stages=3)
    labels = dict(template.diagram(template.parse("conv:k3:d1:w1.0|conv:k3:d1:w1.0|conv:k3:d1:w1.0")).nodes)
    assert "-> /2" in labels["stage2"] and "-> /4" in labels["stage3"] and "/" not in labels["stage1"]


def test_darts_cells_and_hierarchical_motifs_are_framed_groups():
    space = create_space("darts")
    lay = check_layout(space.diagram(samples(space, 1)[0]))
    assert [" ".join(g.label) for g in lay.groups][0] == "normal cell"
    assert " ".join(lay.groups[1].label).startswith("reduction cell")
    for g, cell in zip(lay.groups, ("normal", "reduce")):
        members = [n for n in lay.nodes.values() if n.id.startswith(cell + ".")]
        assert len(members) == 2 + space.nodes + 1 and all(inside(n.box, g.frame) for n in members)
    assert lay.nodes["normal.c_k-2"].layer == lay.nodes["normal.c_k-1"].layer == 0
    h = create_space("hierarchical", motifs=3, motif_nodes=3, cell_nodes=4, channels=4)
    d = h.diagram(h.parse("m1=sep3,conv1/max3;m2=none,dw3/avg3;m3=id,id/id;cell=m2,none,m1/none,none/id"))
    lay = check_layout(d)
    assert [" ".join(g.label).split(" (")[0] for g in lay.groups] == ["cell", "motif m1", "motif m2"]
    assert 'subgraph "cluster_0"' in d.to_dot()


# -- the layout engine on awkward graphs ------------------------------------------------------
def test_cycles_self_loops_parallel_edges_and_isolated_nodes():
    d = Diagram(title="awkward " * 30)
    d.edge("a", "b", "forward")
    d.edge("b", "c", "on")
    d.edge("c", "a", "back to the start")  # a cycle: drawn reversed
    d.edge("b", "b", "self")
    d.edge("a", "c", "one")
    d.edge("a", "c", "two, with a label long enough to be wrapped over several lines")
    d.node("lonely", "an isolated node with a long label that wraps")
    d.group("a group", ["a", "b"])
    lay = check_layout(d)
    assert sum(e.reversed for e in lay.edges) == 1
    assert [len(e.label) > 1 for e in lay.edges][-1]
    assert len(lay.title) > 1  # wrapped, not cut


def test_random_dags_lay_out_cleanly():
    rng = np.random.default_rng(42)
    ops = ["conv", "sep_conv_5x5", "skip", "max_pool_3x3", "a much longer operation name"]
    for trial in range(12):
        n = int(rng.integers(3, 14))
        d = Diagram(title=f"random DAG {trial}")
        for i in range(n):
            d.node(f"n{i}", f"node {i}" + (" with a longer label" if rng.random() < 0.3 else ""))
        for j in range(1, n):
            for i in rng.choice(j, size=min(j, int(rng.integers(1, 4))), replace=False):
                d.edge(f"n{i}", f"n{j}", str(rng.choice(ops)) if rng.random() < 0.7 else "")
        check_layout(d)


def test_empty_and_single_node_diagrams():
    check_layout(Diagram())
    check_layout(Diagram(title="just a title"))
    d = Diagram()
    d.node("only")
    lay = check_layout(d)
    assert lay.width > 0 and lay.height > 0


# -- engines and formats ---------------------------------------------------------------------
def test_engines_and_formats_are_checked(tmp_path, monkeypatch):
    d = Diagram(title="t")
    d.edge("a", "b", "x")
    with pytest.raises(ConfigError, match=r"unknown format '\.jpg' \(valid: \.dot, \.gv, \.svg, \.png, \.pdf\)"):
        d.render(tmp_path / "a.jpg")
    with pytest.raises(ConfigError, match="diagram engine 'bogus' is unknown"):
        d.render(tmp_path / "a.png", engine="bogus")
    assert d.render(tmp_path / "a.gv", engine="matplotlib").read_text() == d.to_dot()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no dot: auto falls back to matplotlib
    with pytest.raises(ConfigError, match="apt-get install graphviz"):
        d.render(tmp_path / "a.png", engine="graphviz")
    with pytest.raises(ConfigError, match="apt-get install graphviz"):
        d.svg(engine="graphviz")
    assert d.render(tmp_path / "x.dot", engine="graphviz").read_text() == d.to_dot()  # DOT text needs no dot
    check_png(d.render(tmp_path / "auto.png"))
    assert d.svg().startswith("<svg")


def test_auto_falls_back_to_matplotlib_when_dot_fails(tmp_path, monkeypatch):
    broken = tmp_path / "bin" / "dot"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'Error: broken' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", str(broken.parent))
    d = Diagram(title="t")
    d.edge("a", "b")
    check_png(d.render(tmp_path / "a.png"))
    from archsearch.errors import ArchsearchError

    with pytest.raises(ArchsearchError, match="Error: broken"):
        d.render(tmp_path / "b.png", engine="graphviz")


def test_dot_text_is_left_to_right_with_labels_and_a_title():
    space = create_space("darts")
    dot = space.diagram(samples(space, 1)[0]).to_dot()
    assert "rankdir=LR" in dot and "fontname=" in dot and "nodesep=" in dot and "ranksep=" in dot
    assert "[label=\"sep_conv" in dot or "[label=\"dil_conv" in dot or "[label=\"max_pool" in dot
    assert dot.count("subgraph \"cluster_") == 2 and "labelloc=t" in dot
    assert dot.rstrip().endswith("}")
