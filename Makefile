# All-MLP vision: build, test and lock.
#
#   make book       build the site into _build/html (notebooks are not executed)
#   make test       lint, unit tests, notebooks (smoke profile), Colab emulation, site build,
#                   browser check
#   make test-latest  unit tests on the newest releases that pyproject.toml admits
#   make book-exec  build the site and execute every notebook
#   make lock       regenerate requirements.txt from requirements.in
#   make exercises  build the exercises (student notebooks, autograder zips)
#   make grade SUBMISSIONS=dir/   grade every notebook in dir/ (table + dir/grades.csv)
#   make public PUBLIC=dir/       export the learners' repository (no solutions, no hidden tests)
#
# Every target creates or reuses .venv (Python 3.11 with the pinned lock).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp
JOBS ?= 2

MATHJAX_VERSION := 3.2.2
MATHJAX_DIR := _vendor/mathjax
MATHJAX := $(MATHJAX_DIR)/tex-mml-chtml.js

NOTEBOOKS := $(wildcard notebooks/*.ipynb)

.PHONY: help $(VENV) test lint unit nbval book book-exec browser chromium fashion-mnist sync-links \
	vendor-mathjax lock clean exercises grade public colab test-latest

help:
	@sed -n '2,12s/^# \{0,1\}//p' Makefile

# --- environment -------------------------------------------------------------

$(VENV): $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# --- tests -------------------------------------------------------------------

test: lint unit nbval colab browser

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP) fashion-mnist
	$(BIN)/pytest -q -n $(JOBS) --dist loadscope -m "not browser and not colab" tests

nbval: $(STAMP) fashion-mnist
ifeq ($(NOTEBOOKS),)
	@echo "nbval: no notebooks/*.ipynb yet, skipping"
else
	MIXER_PROFILE=smoke $(BIN)/pytest -q -p no:cacheprovider --nbval-lax \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg \
		-n $(JOBS) --dist loadscope $(NOTEBOOKS)
endif

# Colab's TPU runtime emulated from tools/colab/pip-freeze.tpu.txt on Python 3.13: the setup
# cell, notebook 01 and exercise 01's grader (tools/colab/emulate.py). The environment is
# built once into .cache/colab/ (needs PyPI) and reused.
colab: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m colab -rs tests/test_colab_emulation.py

# The unit tests on the newest releases that pyproject.toml's ranges admit, instead of the
# lock, in a fresh .cache/latest venv on Python 3.13 (jax >= 0.11 and flax >= 0.12.9 need
# Python 3.12 or later). PyTorch is left out: its newer releases on PyPI are CUDA builds of
# several GB, so the test modules that use torch are not run here.
LATEST := .cache/latest
test-latest: $(STAMP)
	rm -rf $(LATEST)
	"$$($(BIN)/python -c 'from tools.colab.emulate import find_python; print(find_python())')" \
		-m venv $(LATEST)
	$(LATEST)/bin/pip install -q --upgrade pip
	$(LATEST)/bin/pip install -q --upgrade --upgrade-strategy eager -e '.[book,cluster,dev]'
	$(LATEST)/bin/pip freeze --exclude-editable > $(LATEST)/freeze.txt
	@echo "Newest releases that differ from requirements.txt:"
	@diff <(sort -f requirements.txt) <(sort -f $(LATEST)/freeze.txt) | grep '^>' || true
	$(LATEST)/bin/pytest -q -n $(JOBS) --dist loadscope -m "not browser and not colab" \
		$$(grep -L torch tests/test_*.py)

browser: book chromium
	$(BIN)/pytest -q -m browser tests/browser

chromium:
	@command -v chromium >/dev/null || { \
		echo "Installing Debian's chromium for the browser check"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# Fashion-MNIST's IDX files, from Debian's package (mixer_ref.data.fashion_mnist reads them).
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
fashion-mnist:
	@test -f $(FASHION_MNIST) || { \
		echo "Installing Debian's dataset-fashion-mnist for the tests and notebooks"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null; }

# --- site --------------------------------------------------------------------

book: $(STAMP) $(MATHJAX)
	$(BIN)/jupyter-book build . --warningiserror --keep-going --quiet

# Same build with every notebook executed: the override config differs from
# _config.yml only in execute.execute_notebooks.
book-exec: $(STAMP) $(MATHJAX) fashion-mnist
	mkdir -p _build
	$(BIN)/python -c 'import sys, yaml; c = yaml.safe_load(open("_config.yml")); \
		c["execute"]["execute_notebooks"] = "force"; yaml.safe_dump(c, sys.stdout)' \
		> _build/_config.exec.yml
	$(BIN)/jupyter-book build . --config _build/_config.exec.yml --warningiserror --keep-going

# Rewrite every notebook's Colab badge and pip-install URL from _config.yml.
sync-links: $(STAMP)
	$(BIN)/python tools/sync_repo_links.py

# MathJax is committed under _vendor/mathjax (served from the site root via
# html_extra_path) so the site renders maths offline. This target re-creates it
# from the npm registry when missing; `make vendor-mathjax` forces a refresh.
$(MATHJAX):
	$(MAKE) vendor-mathjax

vendor-mathjax:
	rm -rf .cache/npm $(MATHJAX_DIR)
	npm install --silent --no-save --no-audit --no-fund --prefix .cache/npm mathjax@$(MATHJAX_VERSION)
	src=.cache/npm/node_modules/mathjax; \
	mkdir -p $(MATHJAX_DIR)/output/chtml/fonts $(MATHJAX_DIR)/input/tex; \
	cp $$src/LICENSE $$src/es5/tex-mml-chtml.js $(MATHJAX_DIR)/; \
	cp -r $$src/es5/output/chtml/fonts/woff-v2 $(MATHJAX_DIR)/output/chtml/fonts/; \
	cp -r $$src/es5/input/tex/extensions $(MATHJAX_DIR)/input/tex/; \
	rm $(MATHJAX_DIR)/input/tex/extensions/all-packages.js; \
	echo "MathJax $(MATHJAX_VERSION) (Apache-2.0), es5 build from npm; see LICENSE." \
		> $(MATHJAX_DIR)/VERSION

# --- maintenance -------------------------------------------------------------

# Resolve requirements.in in a throwaway venv and freeze it, keeping the header.
lock:
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q -r requirements.in; \
	{ head -n 1 requirements.txt; "$$tmp/venv/bin/pip" freeze --exclude-editable; } \
		> "$$tmp/requirements.txt"; \
	mv "$$tmp/requirements.txt" requirements.txt

clean:
	rm -rf _build artifacts .pytest_cache .ruff_cache .cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf

# --- exercises -----------------------------------------------------------------

# otter assign on every exercises/NN_name/NN_name.ipynb master: rewrites the committed
# student/ notebooks (same bytes when nothing changed) and builds the gitignored
# autograder/ zips (and checks that the solutions pass their own tests).
exercises: $(STAMP)
	$(BIN)/python exercises/build.py

# Grade every .ipynb in SUBMISSIONS, each in its own sandbox (exercises/runner.py), TIMEOUT
# seconds and MEMORY MiB each; prints a table and writes SUBMISSIONS/grades.csv.
SUBMISSIONS ?= submissions
TIMEOUT ?= 300
MEMORY ?= 2048
grade: $(STAMP)
	@test -n "$$(ls exercises/*/autograder/*.zip 2>/dev/null)" || $(MAKE) exercises
	$(BIN)/python exercises/grade.py "$(SUBMISSIONS)" --timeout $(TIMEOUT) --jobs $(JOBS) \
		--memory $(MEMORY) --csv "$(SUBMISSIONS)/grades.csv"

# The learners' repository: this one without the exercises' masters, mutants, variants,
# adversarial fixtures and their tests (exercises/export.py; fails if a solution leaks).
PUBLIC ?= _build/public
public:
	rm -rf "$(PUBLIC)"
	$(BIN)/python exercises/export.py "$(PUBLIC)"
