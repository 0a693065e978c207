# The only interface: every target bootstraps what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_PYTHON ?= python3.11
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: bootstrap
bootstrap: ## install uv if missing, then every workspace package from uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --all-packages --locked --quiet

.PHONY: system-deps
system-deps: ## Debian packages used by tests and the demo (PostgreSQL, OpenSSH, poppler)
	@scripts/install-system-deps.sh

.PHONY: node-deps
node-deps: ## npm packages (Azurite, the Azure Blob emulator) pinned by tools/azurite/package-lock.json
	@if [ -f tools/azurite/package-lock.json ] && [ ! -x tools/azurite/node_modules/.bin/azurite-blob ]; then \
		cd tools/azurite && npm ci --no-audit --no-fund --loglevel=error; fi

.PHONY: run
run: bootstrap system-deps node-deps ## the whole suite on embedded defaults (no Docker); Ctrl-C stops it
	$(UV) run --frozen relay dev

.PHONY: test
test: bootstrap system-deps node-deps ## every test (unit, integration against real servers, end-to-end)
	$(UV) run --frozen pytest $(PYTEST_ARGS)

.PHONY: lint
lint: bootstrap ## ruff (lint + format check), mypy strict, import rules
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	scripts/mypy-all.sh
	$(UV) run --frozen lint-imports

.PHONY: fmt
fmt: bootstrap ## apply ruff fixes and formatting
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

.PHONY: asyncapi
asyncapi: bootstrap ## write the AsyncAPI documents of the Kafka consumers to docs/asyncapi/
	@mkdir -p docs/asyncapi
	$(UV) run --frozen faststream docs gen relay_association_store.main:create_app --factory \
		--out docs/asyncapi/association-store.json

.PHONY: bench
bench: bootstrap ## every figure beside its limit, medians of 3 runs; rewrites docs/benchmarks.md
	$(UV) run --frozen python bench/run.py --write

.PHONY: clean
clean: ## remove the embedded stack's data
	rm -rf var
