# One command to set up and run the demo, one to set up and run the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FAISS  ?= cpu
OTHER  := $(if $(filter gpu,$(FAISS)),cpu,gpu)
STAMP  := $(VENV)/.installed-faiss-$(FAISS)

.PHONY: setup data run test lint bench bench-check clean

# Idempotent: reinstalls only when pyproject.toml changes or FAISS flavour switches.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	-@$(BIN)/python -m pip uninstall --quiet --yes faiss-$(OTHER) 2>/dev/null
	$(BIN)/python -m pip install --quiet -e '.[faiss-$(FAISS),vision,dev]'
	@rm -f $(VENV)/.installed-faiss-*
	@touch $@

setup: $(STAMP)

# Fashion-MNIST, verified: Debian's dataset-fashion-mnist (as root), else the official mirror.
data: setup
	$(BIN)/mrlbench fetch fashion-mnist

run: data
	$(BIN)/mrlbench run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint data
	$(BIN)/pytest

# Performance tracking (pytest-benchmark): `make bench` saves every run under .benchmarks/;
# `make bench-check` runs again and fails if any benchmark's best time is more than
# BENCH_TOLERANCE percent slower than the last saved run (BENCHMARKS.md: why this much).
BENCH           := $(BIN)/pytest benchmarks --benchmark-sort=name --benchmark-columns=min,mean,rounds
BENCH_TOLERANCE ?= 30

bench: setup
	$(BENCH) --benchmark-autosave

bench-check: setup
	$(BENCH) --benchmark-compare --benchmark-compare-fail=min:$(BENCH_TOLERANCE)%

clean:
	rm -rf $(VENV) results .pytest_cache .benchmarks
