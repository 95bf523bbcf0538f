"""Architecture diagrams as data: nodes and labelled edges, written as graphviz DOT.

Rendering: ``.dot``/``.gv`` writes the text; ``.svg``/``.png``/``.pdf`` uses graphviz's ``dot``
when it is installed and otherwise draws the graph with matplotlib (nodes placed in layers by
longest path from the sources, so a DAG reads left to right).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from archsearch.errors import ConfigError

FORMATS = (".dot", ".gv", ".svg", ".png", ".pdf")


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Diagram:
    """A directed graph to draw. Node ids are strings; labels default to the id."""

    title: str = ""
    nodes: list[tuple[str, str]] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    def node(self, node_id: str, label: str | None = None) -> str:
        if all(n != node_id for n, _ in self.nodes):
            self.nodes.append((node_id, label if label is not None else node_id))
        return node_id

    def edge(self, src: str, dst: str, label: str = "") -> None:
        self.node(src)
        self.node(dst)
        self.edges.append((src, dst, label))

    def to_dot(self) -> str:
        lines = ["digraph architecture {", "  rankdir=LR;", "  node [shape=box, style=rounded, fontsize=10];"]
        if self.title:
            lines.append(f"  label={_quote(self.title)}; labelloc=t;")
        for node_id, label in self.nodes:
            lines.append(f"  {_quote(node_id)} [label={_quote(label)}];")
        for src, dst, label in self.edges:
            attr = f" [label={_quote(label)}, fontsize=9]" if label else ""
            lines.append(f"  {_quote(src)} -> {_quote(dst)}{attr};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def layers(self) -> dict[str, int]:
        """Longest-path depth of each node from a source (cycles, if any, are cut)."""
        depth = {n: 0 for n, _ in self.nodes}
        for _ in range(len(self.nodes)):
            changed = False
            for src, dst, _ in self.edges:
                if src != dst and depth[dst] < depth[src] + 1 <= len(self.nodes):
                    depth[dst] = depth[src] + 1
                    changed = True
            if not changed:
                break
        return depth

    def render(self, path: str | os.PathLike[str]) -> Path:
        """Write the diagram; the format follows the file suffix."""
        out = Path(path)
        suffix = out.suffix.lower()
        if suffix not in FORMATS:
            raise ConfigError(f"diagram file {str(out)!r}: unknown format {suffix or '(none)'!r} "
                              f"(valid: {', '.join(FORMATS)})")
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix in (".dot", ".gv"):
            out.write_text(self.to_dot())
            return out
        dot = shutil.which("dot")
        if dot:
            subprocess.run([dot, f"-T{suffix[1:]}", "-o", str(out)], input=self.to_dot(), text=True,
                           check=True, capture_output=True)
            return out
        self._draw_matplotlib(out)
        return out

    def _draw_matplotlib(self, out: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        depth = self.layers()
        columns: dict[int, list[str]] = {}
        for node_id, _ in self.nodes:
            columns.setdefault(depth[node_id], []).append(node_id)
        pos = {}
        for col, ids in columns.items():
            for row, node_id in enumerate(ids):
                pos[node_id] = (col * 2.2, -(row - (len(ids) - 1) / 2) * 1.2)
        width = max(4.0, 1.6 * (max(columns, default=0) + 1))
        height = max(2.5, 0.9 * max((len(v) for v in columns.values()), default=1))
        fig, ax = plt.subplots(figsize=(min(width, 40), min(height, 30)))
        for src, dst, label in self.edges:
            (x0, y0), (x1, y1) = pos[src], pos[dst]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="->", color="0.4", shrinkA=14, shrinkB=14))
            if label:
                ax.text((x0 + x1) / 2, (y0 + y1) / 2, label, fontsize=6, ha="center", va="center",
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
        labels = dict(self.nodes)
        for node_id, (x, y) in pos.items():
            ax.text(x, y, labels[node_id], fontsize=7, ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.3", fc="#e8f0fe", ec="#4a6fa5"))
        ax.set_title(self.title, fontsize=9)
        ax.axis("off")
        xs = [p[0] for p in pos.values()] or [0.0]
        ys = [p[1] for p in pos.values()] or [0.0]
        ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
        ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
        fig.tight_layout()
        fig.savefig(out)
        plt.close(fig)
