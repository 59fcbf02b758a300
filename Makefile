# Two commands matter: `make run` (the app with its embedded defaults: Azurite + sandbox)
# and `make test` (the whole suite). Both bootstrap what is missing first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bootstrap lint typecheck unit bench bench-refresh bench-write bench-export bench-peers bench-triggers sandbox connector clean

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
	@$(VENV)/bin/mypy shared function_app.py sandbox devhost scripts

# Cold start (import ratio against azure.functions + pydantic, then the first request that
# builds the container) and the read path's request overhead (quick). The heavier ones follow.
# Each runs even when an earlier one is over its target; the target fails if any was.
bench: bootstrap
	@status=0; \
	$(PY) benchmarks/cold_start.py || status=1; \
	$(PY) benchmarks/first_request.py || status=1; \
	$(PY) benchmarks/request_overhead.py || status=1; \
	exit $$status

# The token lifecycle's refresh job: 10,000 due connections at sandbox latency 20 ms, worked
# by one worker process (16 and 32 refreshes in flight) and by two (16 each) from the same
# queue (BENCH_ARGS="--connections 3000" for a quicker run), then the CPU one refresh costs,
# part by part (what bounds the job on a small machine). Figures: benchmarks/README.md.
bench-refresh: bootstrap
	@$(PY) benchmarks/refresh.py $(BENCH_ARGS)
	@$(PY) benchmarks/refresh_costs.py

# Writing mail: bulk mark-read of 500 ($batch vs one by one, Graph latency 50 ms) and peak
# RSS while sending a 35 MB attachment. Figures: benchmarks/README.md.
bench-write: bootstrap
	@$(PY) benchmarks/bulk.py
	@$(PY) benchmarks/send_memory.py

# Archiving: a full MIME export of 5,000 messages of ~20 KB with Graph at 30 ms, then an
# incremental one after 50 new messages; worker peak RSS. Figures: benchmarks/README.md.
bench-export: bootstrap
	@$(PY) benchmarks/export.py

# This app against msgraph-sdk-python (PATCH each, and $batch), python-o365 (its default delay,
# and none) and a bare httpx client as the floor (list 50, get 10, send 5, mark 20 read) on
# one sandbox, then a profile of the dev host's share. The peers are benchmark-only: installed
# into .venv/bench from requirements-bench.txt, never into the app's requirements.
# Figures: benchmarks/README.md.
bench-peers: bootstrap
	@if [ ! -x $(VENV)/bench/bin/python ] || ! cat requirements.txt requirements-bench.txt | cmp -s - $(VENV)/bench/.requirements; then \
		echo "bench-peers: installing the peers into $(VENV)/bench"; \
		[ -x $(VENV)/bench/bin/python ] || $(PY) -m venv $(VENV)/bench; \
		$(VENV)/bench/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt && \
		cat requirements.txt requirements-bench.txt > $(VENV)/bench/.requirements; \
	fi
	@$(PY) benchmarks/peers.py $(BENCH_ARGS)

# Trigger delivery under faults: 2,000 messages in bursts over 60 s across 50 subscriptions, a
# receiver answering 500 to 30% and hanging on 2%, the worker process SIGKILLed twice; then the
# same run with Graph's notifications dropped (the sweep alone). Quick run:
# BENCH_ARGS="--messages 200 --subscriptions 5 --seconds 10". Figures: benchmarks/README.md.
bench-triggers: bootstrap
	@$(PY) benchmarks/triggers.py $(BENCH_ARGS)

# The Power Automate / Logic Apps connector, regenerated from the route table (commit it).
connector: bootstrap
	@$(PY) scripts/generate_connector.py

sandbox: bootstrap
	@$(PY) -m sandbox

clean:
	rm -rf $(VENV) node_modules .sandbox .devhost .audit
