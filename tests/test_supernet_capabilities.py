"""Supernets declare what one-shot methods read (parameter-free and skip candidates, node groups);
nothing is inferred from candidate names or space names."""

from __future__ import annotations

import pytest

from archsearch.core import Task
from archsearch.errors import ConfigError
from archsearch.oneshot import create_oneshot
from archsearch.oneshot.base import count_param_free
from archsearch.spaces import create_space, list_spaces
from archsearch.spaces.base import SPACES
from conftest import TINY_SUPERNET_SPACES

TASK = Task((1, 8, 8), 10)
WITH_SUPERNET = [n for n in list_spaces() if SPACES.get(n).has_supernet]


@pytest.mark.parametrize("name", WITH_SUPERNET)
def test_declared_capabilities_are_consistent(name):
    space = create_space(name, **TINY_SUPERNET_SPACES.get(name, {}))
    net = space.supernet(TASK)
    candidates = {c for cp in net.choice_points for c in cp.candidates}
    assert net.param_free <= candidates and net.skip_candidates <= net.param_free
    if space.supernet_node_groups:
        covered = [i for s, e in net.node_groups for i in range(s, e)]
        assert covered == list(range(len(net.choice_points)))
    else:
        assert net.node_groups is None


def test_counts_follow_the_declaration_not_the_name():
    space = create_space("nb201", ops=["skip_connect", "nor_conv_3x3"])
    net = space.supernet(TASK)
    all_skips = space.decode([0] * len(space.decisions()))
    assert count_param_free(net, all_skips) == {"param_free": 6, "skips": 6}
    net.skip_candidates = frozenset()  # a supernet that declares no skip connections has none to count
    assert count_param_free(net, all_skips)["skips"] == 0


def test_pc_darts_options_need_a_space_that_declares_them():
    with pytest.raises(ConfigError, match="partial channels.*valid spaces: darts"):
        create_oneshot("darts", create_space("nb201"), 0, partial_channels=2)
    with pytest.raises(ConfigError, match="edge_norm.*valid spaces: darts"):
        create_oneshot("darts", create_space("nb201"), 0, edge_norm=True)
    with pytest.raises(ConfigError, match="must divide space.channels"):
        create_oneshot("darts", create_space("darts", channels=6), 0, partial_channels=4)
