"""One-shot search: supernets that share weights across every architecture of a space.

The supernet protocol spaces implement lives with them (``archsearch.spaces.supernet``);
``base.py`` is the protocol methods implement (DARTS, GDAS, ENAS, SPOS are found by the
registry, which imports every module of this package); ``search.py`` runs them.
"""

from archsearch.spaces.supernet import ChoicePoint, Supernet, mix
from archsearch.oneshot.base import ONESHOT, OneShotMethod, create_oneshot, register_oneshot

__all__ = ["ChoicePoint", "ONESHOT", "OneShotMethod", "Supernet", "create_oneshot", "mix", "register_oneshot"]
