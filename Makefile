# kruisebus: `make demo` runs the whole pipeline on the embedded cluster, `make test` runs every test.
# Both create .venv on first use and install the pinned dependencies (requirements.lock); nothing
# needs to be installed by hand first.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo up test test-fast test-real lint typecheck lock bench clean realkube cri-api

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kruisebus demo

up: $(STAMP)
	$(BIN)/kruisebus up

test: $(STAMP) tools realkube cri-api
	$(BIN)/ruff check .
	$(BIN)/mypy schemas services sim bench
	$(BIN)/python -m pytest -q

# Only the tests against the real control plane (marker `real`).
test-real: $(STAMP) tools realkube
	$(BIN)/python -m pytest -q -m real

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not real"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy schemas services sim bench

# kubectl is used by the sim's conformance tests; install Debian's client when it is missing.
# containerd, runc, docker-registry, htpasswd (apache2-utils) and busybox-static run the cri runtime's
# tests (tests/cri.py): a real containerd pulling from a real registry on loopback.
.PHONY: tools
tools:
	@command -v kubectl >/dev/null 2>&1 || { \
	  echo "installing kubectl (Debian kubernetes-client)"; \
	  (apt-get update -qq && apt-get install -y -qq kubernetes-client) >/dev/null 2>&1 || \
	  echo "warning: kubectl could not be installed; kubectl tests will be skipped"; }
	@{ command -v containerd && command -v runc && command -v docker-registry && command -v htpasswd \
	   && test -x /bin/busybox; } >/dev/null 2>&1 || { \
	  echo "installing containerd, docker-registry, apache2-utils, busybox-static (the cri runtime's tests)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc \
	    docker-registry apache2-utils busybox-static) >/dev/null 2>&1 || \
	  echo "warning: containerd/docker-registry could not be installed; the cri runtime tests will be skipped"; }

# The CRI API (runtime.v1alpha2) for the cri runtime: api.proto from Debian's kubernetes source package,
# compiled with grpcio-tools into a cache outside the work tree (docs/runtime.md). Seconds, once.
.PHONY: cri-api
cri-api: $(STAMP)
	@$(BIN)/python -m services.runtime.cri_api build || \
	  echo "warning: the CRI API could not be compiled; the cri runtime tests will be skipped"

# The real control plane of the `[real]` tests: kube-apiserver, kube-controller-manager and
# kube-scheduler 1.20 built from Debian's kubernetes source package, plus Debian's etcd, cached outside
# the work tree (docs/real-cluster.md). About 5 minutes the first time, a no-op afterwards; where it
# cannot be built the `[real]` tests skip and say why.
realkube: $(STAMP)
	@$(BIN)/python -m tests.realkube build || \
	  echo "warning: the real control plane could not be built; the [real] tests will be skipped"

lock:
	$(BIN)/python -m pip freeze --exclude-editable | sed '1i # Pinned versions of every dependency (pip constraints). Regenerate: make lock' > requirements.lock

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
