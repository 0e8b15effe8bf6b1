PYTHON ?= python3
TORCH_PIN ?= torch==2.13.0

.PHONY: install demo test lint bench clean

install:
	$(PYTHON) -m pip install $(TORCH_PIN)
	$(PYTHON) -m pip install -e ".[dev,ray]"

demo: install
	$(PYTHON) -m bundleflow.cli demo --out runs/demo

# one pytest-xdist worker per core, one torch thread each (tests/conftest.py); slow tests first
TEST_WORKERS ?= auto
test: install
	$(PYTHON) -m pytest tests -n $(TEST_WORKERS) --dist worksteal

# style and types (also run by CI after the tests): ruff lint + format check, mypy on the package
lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

bench:
	$(PYTHON) benchmarks/bench_valuation.py

clean:
	rm -rf runs build *.egg-info .pytest_cache
