"""The plugin's components pass archsearch's own conformance suites."""

from archsearch.testing import SpaceSuite, StrategySuite


class TestStackSpace(SpaceSuite):
    space_name = "stack"


class TestHillStrategy(StrategySuite):
    strategy_name = "hill"
