"""Search strategies (ask/tell), registered by name."""

from archsearch.strategies.base import (STRATEGIES, Strategy, Wrapper, create_strategy, list_strategies,
                                        register_strategy)
from archsearch.strategies.bananas import Bananas
from archsearch.strategies.evolution import RegularizedEvolution
from archsearch.strategies.grid import GridSearch
from archsearch.strategies.hyperband import BOHB, Hyperband, SuccessiveHalving
from archsearch.strategies.local_search import LocalSearch
from archsearch.strategies.prefilter import Prefilter
from archsearch.strategies.nsga2 import NSGA2
from archsearch.strategies.random import RandomSearch
from archsearch.strategies.reinforce import Reinforce
from archsearch.strategies.tpe import TPE
from archsearch.strategies.warm_start import WarmStart

__all__ = ["STRATEGIES", "Bananas", "GridSearch", "LocalSearch", "NSGA2", "Prefilter", "RandomSearch",
           "RegularizedEvolution", "Reinforce", "Strategy", "TPE", "WarmStart", "BOHB", "Hyperband",
           "SuccessiveHalving",
           "Wrapper", "create_strategy", "list_strategies", "register_strategy"]
