# Partner portal back end. `make run` runs the whole local stack; `make test` installs and passes every test.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: install run test test-fast lint contracts bench deploy-check demo clean

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

clean:
	rm -rf var/ .pytest_cache
