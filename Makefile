# `make demo` and `make test` work on a fresh machine: each sets up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,analyzer,training

.PHONY: setup demo examples test lint bench schema

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) scripts/demo.py --out demo_out

examples: setup
	rm -rf demo_out/wild
	$(VENV)/bin/dataspec normalize examples/wild --out-dir demo_out/wild --notes
	$(VENV)/bin/dataspec validate demo_out/wild --report demo_out/wild_validate.csv

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/bench_load.py --pages 50000

schema: setup
	$(VENV)/bin/dataspec schema --out schemas/dataspec-0.3.schema.json
