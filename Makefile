# Two commands matter: `make run` (the app with its embedded defaults: Azurite + sandbox)
# and `make test` (the whole suite). Both bootstrap what is missing first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bootstrap lint typecheck unit bench bench-refresh bench-write sandbox connector clean

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

# Cold start and the read path's request overhead (quick). The heavier ones follow.
bench: bootstrap
	@$(PY) benchmarks/cold_start.py
	@$(PY) benchmarks/request_overhead.py

# The token lifecycle's refresh job: 10,000 due connections at sandbox latency 20 ms
# (BENCH_ARGS="--connections 2000" for a quicker run). Figures: benchmarks/README.md.
bench-refresh: bootstrap
	@$(PY) benchmarks/refresh.py $(BENCH_ARGS)

# Writing mail: bulk mark-read of 500 ($batch vs one by one, Graph latency 50 ms) and peak
# RSS while sending a 35 MB attachment. Figures: benchmarks/README.md.
bench-write: bootstrap
	@$(PY) benchmarks/bulk.py
	@$(PY) benchmarks/send_memory.py

# The Power Automate / Logic Apps connector, regenerated from the route table (commit it).
connector: bootstrap
	@$(PY) scripts/generate_connector.py

sandbox: bootstrap
	@$(PY) -m sandbox

clean:
	rm -rf $(VENV) node_modules .sandbox .devhost .audit
