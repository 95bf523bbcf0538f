"""One-shot search: supernets that share weights across every architecture of a space."""

from archsearch.oneshot.supernet import ChoicePoint, Supernet, mix

__all__ = ["ChoicePoint", "Supernet", "mix"]
