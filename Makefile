# The two commands: `make test` (set up everything, run every test and quality gate) and
# `make demo` (set up everything, show the gate's verdict on a local stack).
SHELL := /bin/bash
PY := .venv/bin/python
VENV_BIN := $(CURDIR)/.venv/bin
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export PATH := $(VENV_BIN):$(PATH)

.PHONY: setup test unit integration sanity sanity-matrix lint packaging molecule release-scenario build demo clean

setup:
	@bash scripts/bootstrap.sh

test: setup
	@bash scripts/run_tests.sh all

unit: setup
	@bash scripts/run_tests.sh unit

integration: setup
	@bash scripts/run_tests.sh integration

sanity: setup
	@bash scripts/run_tests.sh sanity

lint: setup
	@bash scripts/run_tests.sh lint

sanity-matrix: setup
	@bash scripts/run_tests.sh sanity-matrix

packaging: setup
	@bash scripts/run_tests.sh packaging

molecule: setup
	@bash scripts/run_tests.sh molecule

release-scenario: setup
	@bash scripts/run_tests.sh release-scenario

build: setup
	@mkdir -p .build/dist && $(VENV_BIN)/ansible-galaxy collection build --force --output-path .build/dist .
	@# The execution environment installs the version-free name.
	@cp "$$(ls -t .build/dist/cleanwithsnapshot-release-*.tar.gz | head -n 1)" .build/dist/cleanwithsnapshot-release.tar.gz

demo: setup
	@bash scripts/demo.sh

clean:
	rm -rf .build .cache tests/output .pytest_cache
