"""Persistence: the SQLite journal every search writes and resumes from."""

from archsearch.storage.journal import SCHEMA_VERSION, Journal

__all__ = ["Journal", "SCHEMA_VERSION"]
