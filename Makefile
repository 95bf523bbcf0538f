# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Each creates .venv when missing. constraints.txt pins the CPU build of torch
# (an unpinned torch pulls the multi-GB CUDA build); GPU users install their own torch.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[ray,dev,export]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/archsearch search $(ARGS)

test: lint
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The contracts a reviewer should not have to check by hand: style (ruff), one-way layers
# (import-linter, [tool.importlinter] in pyproject.toml), strict types on the protocol modules (mypy).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/main_job.py
	$(PY) benchmarks/trial_overhead.py
	$(PY) benchmarks/parallel_speedup.py
	$(PY) benchmarks/space_ops.py
	$(PY) benchmarks/nb201_build.py
	$(PY) benchmarks/rnn_cell_speed.py
	$(PY) benchmarks/rnn_search.py --threads 1
	$(PY) benchmarks/oneshot_step.py
	$(PY) benchmarks/oneshot_digits.py
	$(PY) benchmarks/synflow_nb201.py --threads 1
	$(PY) benchmarks/latency.py --threads 1
	$(PY) benchmarks/calibrate_digits.py --threads 1
	$(PY) benchmarks/inheritance.py
	$(PY) benchmarks/multi_fidelity.py --threads 1
	$(PY) benchmarks/median_stopping.py
	$(PY) benchmarks/export.py
	$(PY) benchmarks/report.py
	$(PY) benchmarks/startup.py

clean:
	rm -rf $(VENV) runs .pytest_cache
