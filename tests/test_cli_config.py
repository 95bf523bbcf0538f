"""Every command builds its objects through one config path: the shared ``--set`` parser, option groups
instead of long parameter lists, and ``list KIND NAME`` reading the registry's declarations."""

from __future__ import annotations

import inspect
import re

import pytest

from archsearch.config import Config, apply_sets, section_options
from archsearch.errors import ConfigError


def test_apply_sets_reads_yaml_values_into_nested_sections():
    data = apply_sets({"space": "chain"}, ["space.layers=4", "budget.trials=3", "strategy.name=random",
                                           "space.widths=[8, 16]"])
    assert data == {"space": {"name": "chain", "layers": 4, "widths": [8, 16]}, "budget": {"trials": 3},
                    "strategy": {"name": "random"}}
    assert section_options(data, "space") == {"layers": 4, "widths": [8, 16]}
    assert section_options(data, "executor") == {}
    assert Config.from_dict(apply_sets({}, ["budget.trials=3", "seed=2"])).budget.trials == 3


@pytest.mark.parametrize("assignments, sections, needle", [
    (["nokey"], None, "--set expects KEY=VALUE, got 'nokey'"),
    (["=3"], None, "--set expects KEY=VALUE"),
    (["space.a.b=1"], None, "--set space.a.b: 'a' is not a section"),
    (["budget.trials=3"], ("space",), "describe --set takes space.KEY=VALUE, got 'budget.trials=3'"),
])
def test_apply_sets_rejects_with_one_line(assignments, sections, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        apply_sets({"space": {"a": 1}}, assignments, sections, "describe")


def test_apply_sets_names_every_section_a_command_takes():
    with pytest.raises(ConfigError, match="space.KEY=VALUE or evaluator.KEY=VALUE"):
        apply_sets({}, ["strategy.x=1"], ("space", "evaluator"), "calibrate")


def test_no_command_takes_a_long_parameter_list():
    from archsearch.cli import calibrate, deploy, measure, search
    from archsearch.cli import inspect as inspect_commands

    for module in (search, inspect_commands, measure, calibrate, deploy):
        for name, fn in vars(module).items():
            if callable(fn) and getattr(fn, "__module__", None) == module.__name__ and not isinstance(fn, type):
                body = getattr(inspect.unwrap(fn), "body", fn)  # a grouped command: the function the groups reach
                code = body.__code__
                assert code.co_argcount + code.co_kwonlyargcount <= 13, (module.__name__, name)


def test_search_groups_still_build_the_same_config():
    from archsearch.cli.search import Parts, Run, build_config

    parts = Parts(config=None, space="chain", strategy="random", dataset=None, evaluator=None, table=None,
                  reward=None)
    run = Run(budget=4, time_="2m", seed=3, executor=None, workers=2, ray_address=None, epochs=1,
              data_fraction=None, set_=["space.layers=3"], out=None)
    cfg = build_config(parts, run)
    assert cfg.space == {"name": "chain", "layers": 3}
    assert cfg.strategy == {"name": "random"}
    assert (cfg.budget.trials, cfg.budget.time, cfg.seed, cfg.fidelity.epochs) == (4, 120.0, 3, 1)
    assert cfg.executor == {"name": "process", "workers": 2}


def test_search_help_lists_every_grouped_flag(run_cli):
    code, out, _ = run_cli("search", "--help")
    assert code == 0
    for flag in ("--config", "--space", "--budget", "--time", "--workers", "--set", "--warm-start", "--calibrate-threshold",
                 "--quiet", "--debug"):
        assert flag in out


def test_list_kind_shows_only_that_kind(run_cli):
    code, out, _ = run_cli("list", "strategies")
    assert code == 0
    assert out.startswith("strategies:") and "evolution" in out and "spaces:" not in out
    assert run_cli("list", "space")[1].startswith("spaces:")


def test_list_kind_name_shows_declared_options(run_cli):
    from archsearch.strategies import STRATEGIES

    code, out, _ = run_cli("list", "strategy", "evolution")
    assert code == 0
    assert out.startswith("strategy evolution: ")
    for declared in STRATEGIES.options("evolution"):
        line = next(line for line in out.splitlines() if line.split()[:1] == [declared.name])
        assert declared.rule_text() in line and declared.spec.help in line
    assert "default 20" in out and "--set strategy.NAME=VALUE" in out


@pytest.mark.parametrize("args, needle", [
    (("list", "bogus"), "unknown kind 'bogus' (valid: space, strategy"),
    (("list", "space", "nope"), "unknown space 'nope'"),
])
def test_list_bad_input_is_one_line_exit_2(run_cli, args, needle):
    code, out, err = run_cli(*args)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
