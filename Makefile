# Convenience aliases; the scripts are the source of truth (README "Two commands").
.PHONY: install demo test lint format

install:
	scripts/install.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
