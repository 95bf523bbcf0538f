"""Search spaces, registered by name. Importing this package registers the built-in ones."""

from archsearch.spaces.base import (
    SPACES, Architecture, Decision, SearchSpace, create_space, list_spaces, register_space,
)
from archsearch.spaces.chain import ChainArch, ChainLayer, ChainSpace

__all__ = [
    "SPACES", "Architecture", "ChainArch", "ChainLayer", "ChainSpace", "Decision", "SearchSpace",
    "create_space", "list_spaces", "register_space",
]
