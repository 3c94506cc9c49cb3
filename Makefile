PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow bench bench-scale clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch from the local wheel (CPU inference; see README), then the project with its dev extras
	$(BIN)/pip install --quiet "torch>=2.11,<2.15" "torchaudio>=2.11,<2.12"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# A library of 50 generated clips in 10 families, one reference per family, and a degraded take to query.
demo: install
	rm -rf demo
	$(BIN)/python benchmarks/corpus.py build demo/recordings --per-label 5 --seed 0
	$(BIN)/python benchmarks/corpus.py build demo/references --per-label 1 --seed 1
	$(BIN)/python benchmarks/corpus.py degrade demo/recordings/voice/voice02.opus demo/take.m4a
	$(BIN)/soundalike index demo/recordings --library demo/library --label-from parent
	$(BIN)/soundalike index demo/references --library demo/library --label-from parent --reference
	@echo "query: demo/take.m4a is demo/recordings/voice/voice02.opus at half the gain, with noise, as AAC 48 kb/s"
	$(BIN)/soundalike query demo/take.m4a --library demo/library -k 5

test: install
	$(BIN)/pytest -q

test-slow: install
	$(BIN)/pytest -q -m slow

bench: install
	$(BIN)/python benchmarks/ingest_query.py

# 10,000 generated clips of mixed formats and lengths: 1 process against the worker processes (~30 min).
bench-scale: install
	$(BIN)/python benchmarks/ingest_scale.py --clips 10000

clean:
	rm -rf $(VENV) demo soundalike-library
