# The two commands of the README: `make repro` (the full pipeline on the embedded default)
# and `make test` (the suite). Both build the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

export PATH := $(BIN):$(PATH)

.PHONY: install data repro fer2013 fer2013-cpu ferplus claims test lint ui clean

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

# A second `make repro` with nothing changed skips `dvc repro` (about 10 s of DVC stat-ing
# 130,000 files to find nothing to do): when nothing the pipeline reads or writes has a newer
# change time (ctime: a copy that keeps old mtimes still counts) than the stamp the last
# complete `dvc repro` left, nothing can have changed. The stamp is kept only when no input
# changed while that repro ran (the pauses after each stamp put any later change on a later
# clock tick: file times are kernel ticks, milliseconds apart, and -cnewer is strict).
# `dvc repro` (or `make repro FULL_CHECK=1`) checks every hash.
REPRO_STAMP := .dvc/tmp/ferops-repro.stamp
REPRO_INPUTS := data data.dvc params.yaml dvc.yaml .dvc/config .dvcignore conf components \
	pipelines registry
REPRO_OUTPUTS := dvc.lock artifacts
FULL_CHECK ?=
# The first path under $(1) changed after file $(2) was (bytecode caches do not count).
changed_since = find $(1) -name __pycache__ -prune -o -cnewer $(2) -print -quit 2>/dev/null

repro: data
	@if [ -z "$(FULL_CHECK)" ] && [ -f $(REPRO_STAMP) ] && [ -f artifacts/predict/examples.md ] \
		&& [ -z "$$($(call changed_since,$(REPRO_INPUTS) $(REPRO_OUTPUTS),$(REPRO_STAMP)))" ]; then \
		echo "Pipeline up to date: nothing it reads or writes changed since the last complete"; \
		echo "dvc repro (FULL_CHECK=1 re-checks every hash; ferops registry status: the champions)."; \
	else \
		rm -f $(REPRO_STAMP) && mkdir -p $(dir $(REPRO_STAMP)) && touch $(REPRO_STAMP).start \
		&& sleep 0.05 && $(BIN)/dvc repro \
		&& if [ -z "$$($(call changed_since,$(REPRO_INPUTS),$(REPRO_STAMP).start))" ]; then \
			mv $(REPRO_STAMP).start $(REPRO_STAMP) && touch $(REPRO_STAMP) && sleep 0.05; fi \
		&& $(BIN)/ferops registry status; \
	fi
	@cat artifacts/predict/examples.md

# The real-data recipes through the whole pipeline (dvc exp run --temp), results committed
# under benchmarks/results/. FER2013_CSV / FERPLUS_CSV override the shared dataset paths.
fer2013: data
	$(BIN)/python benchmarks/fer2013_accuracy.py --recipe fer2013

# The `fer2013` recipe with lighter augmentation and ten test-time views, for a 2-core CPU
# whose hour buys about 30 epochs (conf/recipe/fer2013_cpu.yaml says why).
fer2013-cpu: data
	$(BIN)/python benchmarks/fer2013_accuracy.py --recipe fer2013_cpu

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
