# Snakepit for TypeScript: set-up, demo and tests from the project's own files.
#
#   make demo    set everything up, then run the demo
#   make test    set everything up, then run every suite (Bun, Deno, pytest, Zig)
#
# Set-up is idempotent: each step leaves a stamp in .snakepit/ and reruns only when its inputs
# change, so a second run finishes in seconds.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .snakepit
BUN := node_modules/.bin/bun
DENO := node_modules/.bin/deno
NATIVE_LIB := zig-out/lib/libsnakepit.so
ZIG_SOURCES := build.zig $(wildcard zig/*.zig)

export DENO_NO_UPDATE_CHECK := 1
export BUN_RUNTIME_TRANSPILER_CACHE_PATH := 0

.PHONY: help setup demo test bench proto clean

help:
	@echo "make demo   - set up and run the demo"
	@echo "make test   - set up and run every test suite"
	@echo "make bench  - set up and run the benchmarks"
	@echo "make proto  - regenerate protobuf code (Python stubs, TS descriptor)"

setup: $(STAMPS)/npm $(STAMPS)/venv $(NATIVE_LIB) $(STAMPS)/promtool

# Bun and Deno ship as npm packages (their binaries inside); npm's install scripts are not needed.
# `npm install --no-save` rather than `npm ci`: the registry lacks some of deno's optional
# per-platform packages, which `npm ci` refuses to skip; the lock file still pins every version.
$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	@echo "==> npm install (bun, deno, TypeScript dependencies)"
	npm install --no-audit --no-fund --no-save --loglevel=error
	@$(BUN) --version >/dev/null && $(DENO) --version >/dev/null
	@touch $@

$(STAMPS)/venv: python/requirements.lock python/pyproject.toml python/setup.py python/src/snakepit_bridge/_lane_native.c
	@mkdir -p $(STAMPS)
	@echo "==> Python venv ($(VENV)) with pinned packages"
	@test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r python/requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e python
	@touch $@

# promtool (Debian's prometheus package) checks the metrics exposition in the tests.
$(STAMPS)/promtool:
	@mkdir -p $(STAMPS)
	@if ! command -v promtool >/dev/null; then \
	  echo "==> apt-get install prometheus (promtool)"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends prometheus >/dev/null; \
	fi
	@promtool --version >/dev/null
	@touch $@

# Zig caches its own work, so this rule is cheap when nothing changed.
$(NATIVE_LIB): $(STAMPS)/venv $(ZIG_SOURCES)
	@echo "==> zig build (native library)"
	$(PY) -m ziglang build -Doptimize=ReleaseSafe
	@touch $@

proto: $(STAMPS)/npm $(STAMPS)/venv
	bash scripts/gen_proto.sh

demo: setup
	$(BUN) run examples/demo.ts

test: setup
	bash scripts/test_all.sh

bench: setup
	@for runtime in "$(BUN) run" "$(DENO) run -A"; do \
	  for bench in call_latency pool_supervision native_core telemetry_overhead fast_lane zero_copy; do \
	    echo "==> $$runtime bench/$$bench.ts"; $$runtime bench/$$bench.ts || exit 1; \
	  done; \
	done

clean:
	rm -rf $(STAMPS) zig-out .zig-cache test-results
