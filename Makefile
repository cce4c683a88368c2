# CareLedger — the Makefile is the interface: run, test, lint, bench.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed

.PHONY: run test lint format unit integration bench clean-data help system-tools fuzz chaos security

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip sync --quiet --python $(PY) requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

run: $(STAMP) ## run the whole system on the embedded broker (Ctrl-C stops it)
	$(VENV)/bin/careledger up

lint: $(STAMP) ## ruff, mypy --strict, import-linter contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(STAMP) ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The pure ledger core must stay at 100 % line and branch coverage.
CORE_MODULES := shared/canonical.py,shared/crypto/*,shared/envelope.py,shared/genesis.py,$\
  shared/merkle/*,shared/block.py,shared/attestation.py,shared/admission.py,shared/chain.py,$\
  shared/checkpoint.py,shared/witness.py,$\
  shared/events/*,services/records/core/*,services/billing/core/*,$\
  services/sealer/core/ingest.py,careledger/client/event.py,careledger/client/receipt.py,$\
  careledger/client/errors.py

system-tools: ## the Debian tools the suite runs for real (prometheus, promtool, chromium)
	@.ci/system-tools

test: lint system-tools ## lint, then the whole suite (unit, integration, end-to-end) and coverage gates
	$(PY) -m pytest --cov --cov-report=term-missing:skip-covered
	$(PY) -m coverage report --include='$(CORE_MODULES)' --fail-under=100 --skip-covered

unit: $(STAMP) ## only the fast unit tests
	$(PY) -m pytest tests/unit -q

# One run of every benchmark, side by side (about 20 minutes on 2 cores): .bench/runs/<UTC time>/
# (results.json, results.md, load.png), .bench/latest, and the table in docs/performance.md.
# BENCH_ARGS=--quick for smaller sizes; BENCH_ARGS="pipeline memory" for a subset.
BENCH_ARGS ?=
bench: $(STAMP) ## benchmarks, one run side by side: .bench/runs/<time>/ (BENCH_ARGS=--quick)
	$(PY) -m tests.bench $(BENCH_ARGS)

clean-data: ## remove the local dev keys, genesis and stores under data/
	rm -rf data

# The adversarial suite alone (docs/security.md); `make test` runs it too. `chaos` is its fault
# injection against real processes: needs root (a size-limited tmpfs, a private PostgreSQL 15).
security: $(STAMP) system-tools ## the adversarial suite only: attacks, fuzzing, faults, privacy, transport
	$(PY) -m pytest tests/security -q

chaos: $(STAMP) ## fault injection only: broker frozen, store full, PostgreSQL restarted, validator store damaged
	$(PY) -m pytest tests/security/faults -q

# Coverage-guided fuzzing (atheris) of the sealer's and a validator's verdicts, longer than the
# 60 s of `make test`: FUZZ_SECONDS per target (envelope, then block). The corpus grows in
# .fuzz/<target>/ across runs; a finding is saved as .fuzz/findings/crash-<sha1> and fails.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP) ## fuzz envelopes and blocks for FUZZ_SECONDS each (default 600); findings in .fuzz/findings
	@mkdir -p .fuzz/findings
	PYTHONPATH=. $(PY) tests/security/events/fuzz_envelope.py seed .fuzz
	for target in envelope block; do \
	  PYTHONPATH=. $(PY) tests/security/events/fuzz_envelope.py $$target .fuzz/$$target \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=65600 \
	    -dict=.fuzz/tokens.dict -artifact_prefix=.fuzz/findings/ -print_final_stats=1 || exit 1; \
	done
