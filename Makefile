# Two commands on a fresh Debian machine with Python 3.11:  make demo  and  make test.
# The venv is built once; the stamp makes a second run skip installation.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.precache-installed
SYSTEM := redis-server:redis-server redis-cli:redis-tools promtool:prometheus chromium:chromium

.PHONY: demo example test check claims lint typecheck pytest bench system venv clean edge edge-deps

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo "precache needs Python 3.11+ (python3.11 or python3 on PATH)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned (a CPU build lies on disk); unpinned, pip would fetch a CUDA build.
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,bench,dev,web]'
	@touch $(STAMP)

venv: $(STAMP)

system:
	@bash scripts/ensure-system.sh $(SYSTEM)

demo: venv
	$(BIN)/precache demo $(ARGS)

# The example site (examples/site): a slow SQLite news site behind precache's middleware, on :8000.
example: venv
	$(BIN)/python -m examples.site $(ARGS)

lint: venv
	$(BIN)/ruff check src tests bench examples

typecheck: venv
	$(BIN)/mypy

# The suite runs in parallel (pytest-xdist): one worker per logical CPU; the tests of one module run on one
# worker (--dist loadscope), so a module-scoped fixture (a trained model, a running service) is built once,
# not once per worker. PYTEST_WORKERS=0 runs it in one process.
# pytest's exit code 5 (no test collected) fails the target like any other failure.
# Bytecode is cached (__pycache__, git-ignored) even where the environment sets PYTHONDONTWRITEBYTECODE (this
# machine does): every `precache serve` a test starts, and each of its workers, would otherwise compile
# precache's sources again (about 0.8 s a process, measured here; the suite starts dozens of them).
PYTEST_WORKERS ?= logical
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope

pytest: venv system edge-deps
	$(PYTEST) --durations=15 $(PYTEST_ARGS)

# Every figure the README and docs/*.md quote from bench/results/*.json is the one in the JSON (< 1 s).
claims: venv
	$(BIN)/python bench/check_claims.py

test: lint typecheck claims pytest

# The inner loop: lint, types and the tests that are neither slow nor on real data (about a minute).
check: lint typecheck claims system edge-deps
	$(PYTEST) -m "not slow and not realdata" $(PYTEST_ARGS)

# The Cloudflare Worker (edge/): npm ci from the lockfile (pinned workerd, wrangler, onnxruntime-web), only
# when package-lock.json changed. Without Node the edge tests skip with a reason (they fail under CI=true).
EDGE_STAMP := edge/node_modules/.precache-installed

$(EDGE_STAMP): edge/package.json edge/package-lock.json
	cd edge && npm ci --no-audit --no-fund --loglevel=error
	@touch $(EDGE_STAMP)

edge-deps:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(EDGE_STAMP); \
	elif [ "$$CI" = "true" ]; then echo "CI=true: the edge tests need Node.js 20+ and npm" >&2; exit 1; \
	else echo "Node.js/npm not found: the edge tests (tests/edge) will skip"; fi

edge: edge-deps
	cd edge && WRANGLER_SEND_METRICS=false npx wrangler deploy --dry-run --outdir dist/table

bench: venv system
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) precache-report .pytest_cache .mypy_cache .ruff_cache edge/node_modules edge/dist edge/src/generated
