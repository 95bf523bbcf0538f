"""Errors a user can cause. The CLI prints them as one line and exits with code 2.

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class ArchsearchError(Exception):
    """Bad input: a name, a number, a config, a file, an architecture string or a journal."""


class ConfigError(ArchsearchError):
    """A config key or value that is unknown or out of range."""


class UnknownNameError(ConfigError):
    """A registry name that does not exist; the message lists the valid ones."""


class ParseError(ArchsearchError):
    """A malformed architecture string or dict."""


class DataError(ArchsearchError):
    """Missing, unreadable or malformed data."""


class JournalError(ArchsearchError):
    """A journal that is missing, corrupt, or from an incompatible schema."""


class SearchAborted(Exception):
    """The search stopped on purpose (too many failed trials). Exit code 1, not a bug."""


class SpaceExhausted(SearchAborted):
    """The strategy has nothing left to propose (a grid fully enumerated): the search ends normally."""


class ExportError(ArchsearchError):
    """A model that cannot be exported in the asked format, or a missing export package; the message
    says why in one line."""


class SpaceTooLarge(ConfigError):
    """A strategy that enumerates (grid) was given a space too large to enumerate."""
