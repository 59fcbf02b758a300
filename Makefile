# Two commands matter: `make run` (the app with its embedded defaults: Azurite + sandbox)
# and `make test` (the whole suite). Both bootstrap what is missing first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bootstrap lint typecheck unit bench sandbox clean

bootstrap:
	@scripts/bootstrap.sh

run: bootstrap
	@$(PY) scripts/run.py

test: bootstrap
	@scripts/test.sh

lint: bootstrap
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: bootstrap
	@$(VENV)/bin/mypy shared function_app.py

bench: bootstrap
	@$(PY) benchmarks/cold_start.py

sandbox: bootstrap
	@$(PY) -m sandbox

clean:
	rm -rf $(VENV) node_modules .sandbox .devhost .audit
