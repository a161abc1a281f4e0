# The two commands of the README. Both set everything up first (idempotent, fast the second time).
VENV ?= .venv

.PHONY: run test setup

setup:
	@bash scripts/setup.sh

run: setup
	@$(VENV)/bin/tanren models prepare
	@$(VENV)/bin/tanren

test: setup
	@$(VENV)/bin/python -m pytest
