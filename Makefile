# livedream: `make demo` dreams the bundled clip, `make test` runs lint, types and tests as CI does.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint types unit bench bench-quick soak clean

install: $(STAMP)

# Reinstall when the project's dependencies change.
$(STAMP): pyproject.toml
	@command -v Xvfb >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(echo "installing xvfb (virtual display for the preview-window tests)" && \
		 apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb >/dev/null)
	@command -v chromedriver >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(echo "installing chromium and chromium-driver (the control page's browser tests)" && \
		 apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/livedream --demo

lint: install
	$(BIN)/ruff check livedream tests benchmarks scripts
	$(BIN)/ruff format --check livedream tests benchmarks scripts

types: install
	$(BIN)/mypy

# In parallel (pytest-xdist): a worker per core, at most 4, each given its share of the cores
# (tests/conftest.py). `worksteal` hands the slow tests' neighbours to an idle worker.
unit: install
	$(BIN)/python -m pytest -q -n auto --dist worksteal

test: lint types unit

bench: install
	$(BIN)/python benchmarks/fps.py --json bench.json

bench-quick: install
	$(BIN)/python benchmarks/fps.py --quick --json bench.json

soak: install
	$(BIN)/python scripts/soak.py
	$(BIN)/python scripts/soak.py --stream --frames 3000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
