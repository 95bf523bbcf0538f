"""One-shot search: supernets that share weights across every architecture of a space.

``supernet.py`` is the protocol spaces implement; ``base.py`` the one methods implement
(DARTS, GDAS, ENAS, SPOS register themselves in ``ONESHOT`` when the package ``archsearch``
imports them: spaces import ``supernet.py``, so this file must not import the methods);
``search.py`` runs them.
"""

from archsearch.oneshot.supernet import ChoicePoint, Supernet, mix  # noqa: I001 - first: spaces import it
from archsearch.oneshot.base import ONESHOT, OneShotMethod, create_oneshot, register_oneshot

__all__ = ["ChoicePoint", "ONESHOT", "OneShotMethod", "Supernet", "create_oneshot", "mix", "register_oneshot"]
