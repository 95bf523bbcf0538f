"""Architecture diagrams as data: nodes, labelled edges and optional groups, drawn as layered DAGs.

A :class:`Diagram` holds what to draw; :meth:`Diagram.layout` computes where (a :class:`Layout`:
boxes in points, 1/72 inch, y growing downwards), which tests can check and the matplotlib
drawing follows exactly:

* layers by longest path from the sources, left to right (cycles, if any, are broken by drawing
  their back edges reversed); :meth:`Diagram.node` may give a node a least layer, so a cell's
  fixed stages get their own columns even when an edge is missing;
* every edge that spans layers runs through virtual slots in the columns it crosses, and its
  label gets a slot of its own in a label column between two node columns (as graphviz's
  ``dot`` does), so a label box can overlap neither a node box nor another label;
* nodes within a column are ordered by barycenter sweeps plus adjacent swaps (fewer crossings)
  and spaced vertically by their box heights (weighted isotonic placement towards their
  neighbours, so chains run straight);
* weakly connected components, and :meth:`Diagram.group` groups (e.g. DARTS's two cells), are
  stacked vertically; a group gets a frame with its caption;
* the figure size follows from the layout, so the (wrapped) title is never cut.

Rendering (:meth:`Diagram.render`, :meth:`Diagram.svg`): ``.dot``/``.gv`` writes the DOT text;
``.svg``/``.png``/``.pdf`` uses graphviz's ``dot`` when it is installed (Debian package
``graphviz``) and the matplotlib drawing of :meth:`Diagram.layout` otherwise. ``engine=`` forces
one ("graphviz" or "matplotlib"; default "auto").
"""

from __future__ import annotations

from archsearch.spaces.diagram.geometry import Box, EdgeRoute, GroupBox, Layout, NodeBox
from archsearch.spaces.diagram.model import Diagram
from archsearch.spaces.diagram.style import ENGINES, FORMATS

__all__ = ["Box", "Diagram", "ENGINES", "EdgeRoute", "FORMATS", "GroupBox", "Layout", "NodeBox"]
