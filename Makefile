# The two commands a newcomer needs: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test soak bench bench-quick bench-install lint format clean

install: $(STAMP)

# A registry that stalls or drops a connection fails one pip run; the same install a little
# later usually goes through (pip's own retries cover a single request, not a stalled one).
comma := ,
PIP_INSTALL = for attempt in 1 2 3; do $(BIN)/python -m pip install --quiet $(1) && break; \
	test $$attempt = 3 && exit 1; echo "pip install failed; trying again in 20 s"; sleep 20; done

# Reinstalls only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(call PIP_INSTALL,--upgrade pip)
	$(call PIP_INSTALL,-e '.[dev]')
	# partition_pdf imports unstructured-inference even for the fast strategy; its own
	# dependencies (torch, torchvision, transformers) are not needed for that path, so none.
	$(call PIP_INSTALL,--no-deps 'unstructured-inference==1.6.14')
	touch $(STAMP)

run: install
	$(BIN)/fruxon stack

# Two workers, one test file each at a time: module fixtures (a stack, an asset) stay whole.
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Not in `make test`: thirty minutes of polling and searching during ingestion (bench/soak.py).
soak: install
	$(BIN)/python bench/soak.py

# Benchmarks need the peers (LangChain, LlamaIndex, sentence-transformers on torch 2.13 CPU:
# the `bench` extra, never a runtime dependency), the corpus (Debian's python3.11-doc) and wrk.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(call PIP_INSTALL,-e '.[dev$(comma)bench]')
	touch $(BENCH_STAMP)

bench-install: $(BENCH_STAMP)
	@test -d /usr/share/doc/python3.11/html/library && command -v wrk >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq python3.11-doc wrk; } || \
	  { echo "install python3.11-doc and wrk (apt-get, as root)"; exit 1; }

bench: bench-install
	$(BIN)/python bench/run_all.py

bench-quick: bench-install
	$(BIN)/python bench/run_all.py --quick

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
