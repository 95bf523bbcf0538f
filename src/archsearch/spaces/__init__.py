"""Search spaces, registered by name. Importing this package registers the built-in ones."""

from archsearch.spaces.base import (
    SPACES, Architecture, Decision, SearchSpace, create_space, list_spaces, register_space,
)
from archsearch.spaces.chain import ChainArch, ChainLayer, ChainSpace
from archsearch.spaces.darts import DARTS_V1, DARTS_V2, DartsArch, DartsSpace
from archsearch.spaces.hierarchical import HierarchicalArch, HierarchicalSpace
from archsearch.spaces.hyperparams import HyperArch, HyperparamSpace
from archsearch.spaces.nb201 import NB201Arch, NB201Space
from archsearch.spaces.rnn_cell import LSTM, NASCELL, RNNCellArch, RNNCellSpace
from archsearch.spaces.skip_chain import SkipChainArch, SkipChainSpace
from archsearch.spaces.template import TemplateArch, TemplateSpace

__all__ = [
    "DARTS_V1", "DARTS_V2", "LSTM", "NASCELL", "SPACES", "Architecture", "ChainArch", "ChainLayer", "ChainSpace",
    "DartsArch", "DartsSpace", "Decision", "HierarchicalArch", "HierarchicalSpace", "HyperArch", "HyperparamSpace",
    "NB201Arch", "NB201Space", "RNNCellArch", "RNNCellSpace", "SearchSpace", "SkipChainArch", "SkipChainSpace",
    "TemplateArch", "TemplateSpace", "create_space", "list_spaces", "register_space",
]
