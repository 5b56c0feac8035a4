# Quick start: `make demo` plans the flagship example; `make test` runs the whole suite.
# Each target creates .venv and installs what it needs on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo stress test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cloudhedge plan examples/frontier-lab.yaml --out plan.json --report report.html

stress: $(STAMP)
	test -f plan.json || $(BIN)/cloudhedge plan examples/frontier-lab.yaml --out plan.json -q
	$(BIN)/cloudhedge stress examples/frontier-lab.yaml --plan plan.json --out stress.json --report stress.html

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/planner.py
	$(BIN)/python bench/stress.py

clean:
	rm -rf $(VENV) plan.json report.html stress.json stress.html
