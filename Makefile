# kruisebus: `make demo` runs the whole pipeline on the embedded cluster, `make test` runs every test.
# Both create .venv on first use and install the pinned dependencies (requirements.lock); nothing
# needs to be installed by hand first.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo up test test-fast lint typecheck lock bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kruisebus demo

up: $(STAMP)
	$(BIN)/kruisebus up

test: $(STAMP) tools
	$(BIN)/ruff check .
	$(BIN)/mypy schemas services sim
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy schemas services sim

# kubectl is used by the sim's conformance tests; install Debian's client when it is missing.
.PHONY: tools
tools:
	@command -v kubectl >/dev/null 2>&1 || { \
	  echo "installing kubectl (Debian kubernetes-client)"; \
	  (apt-get update -qq && apt-get install -y -qq kubernetes-client) >/dev/null 2>&1 || \
	  echo "warning: kubectl could not be installed; kubectl tests will be skipped"; }

lock:
	$(BIN)/python -m pip freeze --exclude-editable | sed '1i # Pinned versions of every dependency (pip constraints). Regenerate: make lock' > requirements.lock

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
