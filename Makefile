# The two commands of the README. Both set everything up first (idempotent, fast the second time).
VENV ?= .venv

.PHONY: run test setup i18n

setup:
	@bash scripts/setup.sh

run: setup
	@$(VENV)/bin/tanren models prepare
	@$(VENV)/bin/tanren

test: setup
	@$(VENV)/bin/python -m pytest

# after changing user-facing messages: extract them, merge them into each language's catalog, compile
i18n: setup
	@VENV=$(VENV) bash scripts/i18n.sh
