"""The experiment config: one YAML document, every key checked.

Sections naming a registered part (``space``, ``strategy``, ``dataset``, ``evaluator``,
``executor``) hold ``name`` plus that part's options, checked against its constructor.
``fidelity``, ``final`` and ``budget`` have fixed keys. ``--set a.b=VALUE`` overrides any
key; VALUE is read as YAML (``3``, ``0.5``, ``[16, 32]``, ``null``).
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

import yaml

from archsearch.core import Fidelity
from archsearch.errors import ConfigError

class _Loader(yaml.SafeLoader):
    """Safe YAML that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``; people write ``1e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


NAMED_SECTIONS = ("space", "strategy", "dataset", "evaluator", "executor")


_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s?)?\s*$")


def parse_duration(value: Any, where: str = "budget.time") -> Optional[float]:
    """Seconds from ``90``, ``90s``, ``10m``, ``2h`` or ``1h30m`` (None stays None); ConfigError otherwise."""
    if value is None:
        return None
    seconds: Optional[float] = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        match = _DURATION.match(value.strip().lower())
        if match and any(match.groups()):
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = 3600 * h + 60 * m + s
    if seconds is None or not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"{where} must be a positive duration such as 90s, 10m, 2h or 1h30m "
                          f"(a plain number is seconds), got {value!r}")
    return seconds


DEFAULT_TRIALS = 30  # the trial budget when neither budget.trials nor budget.time is given


@dataclass
class Budget:
    """When the search stops: ``trials`` complete trials or ``time``, whichever comes first.

    ``time`` (seconds, or a duration such as ``10m``) is the budget of the *whole job*, search and
    final training together: the planner (``plan.py``) splits it. ``trials`` None means
    :data:`DEFAULT_TRIALS` without a time budget, and no trial limit with one."""

    trials: Optional[int] = None
    time: Optional[float] = None
    max_failures: int = 10
    max_retries: int = 1  # runs again of a trial whose worker died (reason crash), never of the network's own failures

    def __post_init__(self) -> None:
        if self.trials is not None and (not isinstance(self.trials, int) or isinstance(self.trials, bool)
                                        or self.trials < 1):
            raise ConfigError(f"budget.trials must be an integer >= 1 or null, got {self.trials!r}")
        self.time = parse_duration(self.time)
        if not isinstance(self.max_failures, int) or self.max_failures < 1:
            raise ConfigError(f"budget.max_failures must be an integer >= 1, got {self.max_failures!r}")
        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ConfigError(f"budget.max_retries must be an integer >= 0, got {self.max_retries!r}")

    @property
    def trial_limit(self) -> Optional[int]:
        """The number of complete trials that ends the search (None: only the time does)."""
        if self.trials is not None:
            return self.trials
        return None if self.time is not None else DEFAULT_TRIALS


@dataclass
class Final:
    """Final training of the best architecture: on train+valid, reporting test accuracy."""

    enabled: bool = True
    epochs: int = 40
    train_on_valid: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"final.epochs must be an integer >= 1, got {self.epochs!r}")


def _default(section: str) -> dict[str, Any]:
    return {
        "space": {"name": "chain"},
        "strategy": {"name": "evolution", "population_size": 10, "sample_size": 3},
        "dataset": {"name": "digits"},
        "evaluator": {"name": "train"},
        "executor": {"name": "inline"},
    }[section]


@dataclass
class Config:
    seed: int = 0
    space: dict[str, Any] = field(default_factory=lambda: _default("space"))
    strategy: dict[str, Any] = field(default_factory=lambda: _default("strategy"))
    dataset: dict[str, Any] = field(default_factory=lambda: _default("dataset"))
    evaluator: dict[str, Any] = field(default_factory=lambda: _default("evaluator"))
    executor: dict[str, Any] = field(default_factory=lambda: _default("executor"))
    fidelity: Fidelity = field(default_factory=lambda: Fidelity(epochs=10))
    final: Final = field(default_factory=Final)
    budget: Budget = field(default_factory=Budget)
    report: bool = True  # write OUT/report.html during the search (html_report.LiveReport) and at its end
    # whether the user named the strategy (not stored): under a time budget the planner may choose one
    strategy_given: bool = field(default=True, repr=False, compare=False)

    # -- (de)serialisation -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed}
        for s in NAMED_SECTIONS:
            out[s] = copy.deepcopy(getattr(self, s))
        out["fidelity"], out["final"], out["budget"] = self.fidelity.to_dict(), asdict(self.final), asdict(self.budget)
        out["report"] = self.report
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        if not isinstance(data, dict):
            raise ConfigError("config must be a mapping of sections")
        valid = [f.name for f in fields(cls) if f.name != "strategy_given"]
        for key in data:
            if key not in valid:
                raise ConfigError(f"unknown config key {key!r} (valid: {', '.join(valid)})")
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        report = data.get("report", True)
        if not isinstance(report, bool):
            raise ConfigError(f"report must be true or false, got {report!r}")
        kwargs: dict[str, Any] = {"seed": seed, "report": report}
        for s in NAMED_SECTIONS:
            section = data.get(s) or _default(s)
            if isinstance(section, str):
                section = {"name": section}
            if not isinstance(section, dict):
                raise ConfigError(f"config section {s!r} must be a mapping with a 'name'")
            if "name" not in section:
                section = {"name": _default(s)["name"], **section}
            kwargs[s] = dict(section)
        for s, klass in (("fidelity", Fidelity), ("final", Final), ("budget", Budget)):
            section = data.get(s) or {}
            if not isinstance(section, dict):
                raise ConfigError(f"config section {s!r} must be a mapping")
            names = [f.name for f in fields(klass)]
            for key in section:
                if key not in names:
                    raise ConfigError(f"unknown key {s}.{key} (valid: {', '.join(names)})")
            defaults = {"fidelity": {"epochs": 10}}.get(s, {})
            kwargs[s] = klass(**{**defaults, **section})
        config = cls(**kwargs, strategy_given=data.get("strategy") is not None)
        config.check_names()
        return config

    def check_names(self) -> None:
        """Every named part exists and every option is one it accepts."""
        from archsearch.catalog import registries

        for s in NAMED_SECTIONS:
            section = getattr(self, s)
            registry = registries()[s]
            registry.get(section["name"])
            options = {k: v for k, v in section.items() if k != "name"}
            try:
                registry.check_options(section["name"], options)
            except ConfigError as exc:
                raise ConfigError(f"{s}: {exc}") from None

    def options(self, section: str) -> dict[str, Any]:
        return {k: v for k, v in getattr(self, section).items() if k != "name"}

    def resolved(self) -> dict[str, Any]:
        """:meth:`to_dict` with every option's default filled in: what the search really runs with
        (``config.yaml`` is written from it). Defaults that YAML cannot hold are left out."""
        from archsearch.catalog import registries

        out = self.to_dict()
        for s in NAMED_SECTIONS:
            section = out[s]
            defaults = registries()[s].defaults(section["name"])
            filled = {k: _plain(v) for k, v in defaults.items() if k not in section}
            out[s] = {"name": section["name"], **{k: v for k, v in {**filled, **section}.items()
                                                 if k != "name" and v is not _UNSET}}
        return out

    def to_resolved_yaml(self, note: str = "") -> str:
        head = "# the resolved config: every option, defaults included\n" + (f"# {note}\n" if note else "")
        return head + yaml.safe_dump(self.resolved(), sort_keys=False)


_UNSET = object()


def _plain(value: Any) -> Any:
    """A default as YAML can write it (tuples as lists), or ``_UNSET``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return _UNSET if any(v is _UNSET for v in items) else items
    if isinstance(value, dict):
        items = {k: _plain(v) for k, v in value.items()}
        return _UNSET if any(v is _UNSET for v in items.values()) or not all(isinstance(k, str) for k in items) \
            else items
    return _UNSET


def load_yaml(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = read_yaml(f.read())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping of sections")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``KEY.PATH=VALUE`` in place."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
    try:
        value = read_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    node = data
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = {}
        elif isinstance(child, str) and p in NAMED_SECTIONS:
            child = {"name": child}
        elif not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {p!r} is not a section")
        node[p] = child
        node = child
    node[parts[-1]] = value


def apply_sets(data: dict[str, Any], assignments: list[str], sections: Optional[tuple[str, ...]] = None,
               command: str = "") -> dict[str, Any]:
    """The one parser of ``--set KEY=VALUE`` every command uses: apply each to ``data`` in place
    (and return it). With ``sections``, a key outside them is one line naming what ``command`` takes."""
    for assignment in assignments:
        if sections is not None and not assignment.strip().startswith(tuple(f"{s}." for s in sections)):
            takes = " or ".join(f"{s}.KEY=VALUE" for s in sections)
            raise ConfigError(f"{command} --set takes {takes}, got {assignment!r}")
        apply_override(data, assignment)
    return data


def section_options(data: dict[str, Any], section: str) -> dict[str, Any]:
    """A named section's options (everything but ``name``), whether it is a mapping, a name or absent."""
    value = data.get(section)
    return {k: v for k, v in value.items() if k != "name"} if isinstance(value, dict) else {}
