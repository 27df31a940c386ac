# The first two targets are the whole set-up on a fresh machine:
#   make run    start sansio-smtpd on examples/smtpd.toml
#   make test   build .venv, then lint, type-check and test everything
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest coverage fuzz fuzz-smoke bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,fuzz]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sansio-smtpd --config examples/smtpd.toml

test: $(STAMP) lint typecheck coverage

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# pytest under coverage; the report is printed, the sans-IO packages first.
coverage: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -q -p no:cacheprovider
	$(BIN)/coverage combine -q
	$(BIN)/coverage report --include='src/sansio_smtp/*,src/minger/*'
	$(BIN)/coverage report

FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS)

# The bounded run `make test` also does (tests/test_fuzz_smoke.py), on its own.
FUZZ_SMOKE_SECONDS ?= 30
fuzz-smoke: $(STAMP)
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SMOKE_SECONDS)

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache
