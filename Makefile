# The two commands of the README: `make repro` (the full pipeline on the embedded default)
# and `make test` (the suite). Both build the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

export PATH := $(BIN):$(PATH)

.PHONY: install data repro fer2013 ferplus claims test lint ui clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The raw default data: rendered deterministically when missing or rendered from other
# `synthetic` params (its marker file records them), then tracked by data.dvc.
# `dvc add` re-hashes only when something under data/ is newer than data.dvc (a plain stat
# walk, milliseconds; DVC's own check of 24,000 files takes seconds).
data: install
	@$(BIN)/ferops data synth --if-stale
	@if [ ! -f data.dvc ] || [ -n "$$(find data -newer data.dvc -print -quit)" ]; then \
		$(BIN)/dvc add --quiet data && touch data.dvc; fi

repro: data
	$(BIN)/dvc repro
	@$(BIN)/ferops registry status
	@cat artifacts/predict/examples.md

# The real-data recipes through the whole pipeline (dvc exp run --temp), results committed
# under benchmarks/results/. FER2013_CSV / FERPLUS_CSV override the shared dataset paths.
fer2013: data
	$(BIN)/python benchmarks/fer2013_accuracy.py --recipe fer2013

ferplus: data
	$(BIN)/python benchmarks/fer2013_accuracy.py --recipe ferplus

# The patents' claims (claims/params.yaml): every arm, every seed, then claims/report.md.
# Hours on a 2-core CPU; DVC's run cache keeps finished arms, so it resumes where it stopped.
claims: data
	$(BIN)/dvc repro claims/dvc.yaml
	@head -40 claims/report.md

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

ui: install
	$(BIN)/ferops ui

clean:
	rm -rf artifacts .pytest_cache
