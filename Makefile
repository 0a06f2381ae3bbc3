# Partner portal back end. `make run` runs the whole local stack; `make test` installs and passes every test.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: install run test test-fast lint contracts bench deploy-check demo fuzz chaos clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: install
	$(PY) -m deploy.local

test: install
	$(PY) -m pytest -q -p no:cacheprovider
	$(MAKE) --no-print-directory deploy-check

test-fast: install
	$(PY) -m pytest -q -m "not integration"

lint: install
	$(PY) -m ruff check contracts events services deploy tests
	$(PY) -m mypy contracts events services deploy tests

contracts: install
	$(PY) -m contracts.export

deploy-check: install
	$(PY) -m deploy.check

bench: install
	$(PY) -m tests.bench

demo: install
	$(PY) -m deploy.demo

# The decoders' property tests with many more examples than `make test` gives them.
FUZZ_EXAMPLES ?= 20000
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider -m fuzz

# A randomized fault schedule under mixed load, then the checker's verdict (docs/RELIABILITY.md).
SEED ?= 1
DURATION ?= 60
chaos: install
	$(PY) -m tests.chaos --seed $(SEED) --duration $(DURATION)

clean:
	rm -rf var/ .pytest_cache
