# One command to set up and run the demo, one to set up and run the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FAISS  ?= cpu
OTHER  := $(if $(filter gpu,$(FAISS)),cpu,gpu)
STAMP  := $(VENV)/.installed-faiss-$(FAISS)

.PHONY: setup data run test lint bench bench-check scale scale-1k scale-4k clean

# Idempotent: reinstalls only when pyproject.toml changes or FAISS flavour switches.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	-@$(BIN)/python -m pip uninstall --quiet --yes faiss-$(OTHER) 2>/dev/null
	$(BIN)/python -m pip install --quiet -e '.[faiss-$(FAISS),vision,ray,dev]'
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
	$(BIN)/mypy

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

# The paper's scale on this machine (not part of `make test`; BENCHMARKS.md "Scale"):
# ImageNet-1K-sized (1,281,167 x 2048, 10.5 GB) and -4K-sized (4.2M x 2048, 34.4 GB)
# MRL-like arrays from `mrlbench synth`, run under a peak anonymous memory meter.
SCALE := results/scale
PEAK  := $(BIN)/python benchmarks/peak_memory.py --json

scale: scale-1k scale-4k

scale-1k: setup
	$(BIN)/mrlbench synth --n-database 1281167 --n-queries 2000 --dim 2048 --classes 1000 \
		--dataset 1K --out $(SCALE)/1k
	$(BIN)/mrlbench run benchmarks/scale/1k-dims.toml
	$(PEAK) $(SCALE)/memory-1k-exact.json -- $(BIN)/mrlbench run benchmarks/scale/1k-exact.toml
	$(PEAK) $(SCALE)/memory-1k-torch.json -- $(BIN)/mrlbench run benchmarks/scale/1k-torch.toml
	$(PEAK) $(SCALE)/memory-1k-hnsw.json -- $(BIN)/mrlbench run benchmarks/scale/1k-hnsw.toml
	du -sh $(SCALE)/run-1k-*/index_files $(SCALE)/run-1k-* 2>/dev/null || true

scale-4k: setup
	$(BIN)/mrlbench synth --n-database 4214000 --n-queries 1000 --dim 2048 --classes 4214 \
		--dataset 4K --out $(SCALE)/4k
	$(PEAK) $(SCALE)/memory-4k-exact.json -- $(BIN)/mrlbench run benchmarks/scale/4k-exact.toml
	du -sh $(SCALE)/run-4k-* 2>/dev/null || true

clean:
	rm -rf $(VENV) results .pytest_cache .benchmarks
