# Two commands on a fresh Debian machine with Python 3.11:  make demo  and  make test.
# The venv is built once; the stamp makes a second run skip installation.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.precache-installed
SYSTEM := redis-server:redis-server redis-cli:redis-tools promtool:prometheus chromium:chromium

.PHONY: demo test lint typecheck pytest bench system venv clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo "precache needs Python 3.11+ (python3.11 or python3 on PATH)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned (a CPU build lies on disk); unpinned, pip would fetch a CUDA build.
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,bench,dev]'
	@touch $(STAMP)

venv: $(STAMP)

system:
	@bash scripts/ensure-system.sh $(SYSTEM)

demo: venv
	$(BIN)/precache demo $(ARGS)

lint: venv
	$(BIN)/ruff check src tests bench

typecheck: venv
	$(BIN)/mypy

pytest: venv system
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

bench: venv system
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) precache-report .pytest_cache .mypy_cache .ruff_cache
