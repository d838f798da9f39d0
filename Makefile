# Every target installs what it needs into .venv/ (Python) and node_modules/ (npm).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lock system-deps generate check-generated lint typecheck test contract fuzz docs demo soak bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"  # 25.1 reads dependency groups (--group)
	$(PY) -m pip install --quiet -c constraints.txt -e . --group dev
	touch $(STAMP)

## Rewrite constraints.txt (the locked versions of everything pyproject.toml does not pin) from .venv/.
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | $(PY) generator/lock.py > constraints.txt

## Debian packages: bubblewrap isolates CrowNest Local's commands (without it the server refuses
## commands with 503 isolation_unavailable unless run with --unsafe-no-isolation; nsenter, from
## util-linux, is on every Debian system).
system-deps:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap >/dev/null; \
	} || echo "warning: could not install bubblewrap; CrowNest Local will refuse to run commands"

NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Regenerate src/crownest/_generated and src/crownest/models from openapi.yaml and templates/.
generate: $(STAMP)
	$(PY) generator/generate.py

## Fail if src/crownest/_generated or src/crownest/models differs from what `make generate` writes.
check-generated: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(PY) generator/generate.py --out $$tmp/_generated && \
	diff -r -x __pycache__ src/crownest/_generated $$tmp/_generated && \
	diff -r -x __pycache__ src/crownest/models $$tmp/models && \
	echo "src/crownest/_generated and src/crownest/models are up to date"

## Lint the spec (Redocly, recommended rules) and the Python code (ruff).
lint: $(STAMP) $(NODE_STAMP)
	node_modules/.bin/redocly lint openapi.yaml --format=stylish
	$(PY) -m ruff check src tests generator benchmarks examples/demo.py examples/guides
	$(PY) -m ruff format --check src tests generator benchmarks examples/demo.py examples/guides

## mypy --strict over the code; pyright over tests/typing/ (what users' type checkers see).
typecheck: $(STAMP) $(NODE_STAMP)
	$(PY) -m mypy
	node_modules/.bin/pyright

# The fuzz runs in `make fuzz` (.ci/run runs both): with it, the suite took 19 min on a loaded 2-core machine.
FUZZ := tests/test_local_conformance.py::test_the_server_conforms_to_openapi_yaml

test: $(STAMP) $(NODE_STAMP) system-deps check-generated lint typecheck
	$(PY) -m pytest -q --deselect $(FUZZ)

## Every public operation, sync and async, against Prism mocking openapi.yaml (make test runs it too).
contract: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest -q tests/test_contract.py

## Schemathesis against CrowNest Local: three seeds at once, 50 examples per operation each;
## CROWNEST_FUZZ_SEEDS=1,2,3,4,5 and CROWNEST_FUZZ_EXAMPLES=200 fuzz more.
fuzz: $(STAMP) system-deps
	$(PY) -m pytest -q $(FUZZ)

## Build the documentation site into site/, warnings as errors (tests/test_docs.py builds it too).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

## Start CrowNest Local and run the product page's worked and async examples against it.
demo: $(STAMP) system-deps
	$(PY) examples/demo.py

## 2,000 create + run + artifact iterations per mode against CrowNest Local with 30 % injected faults.
soak: $(STAMP) system-deps
	$(PY) tests/soak.py --calls 2000

## The SDK's costs against raw httpx, side by side in one run (benchmarks/RESULTS.md records a run).
bench: $(STAMP) system-deps
	$(PY) benchmarks/bench.py

clean:
	rm -rf $(VENV) node_modules site .pytest_cache .mypy_cache .ruff_cache
