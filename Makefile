# Convenience aliases; the scripts are the source of truth (README "Two commands").
.PHONY: install demo test lint format bench bench-quick

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

# Speed against baselines, run side by side (README "Benchmarks"); not part of the tests.
bench:
	.venv/bin/python benchmarks/train_throughput.py
	.venv/bin/python benchmarks/eval_throughput.py
	.venv/bin/python benchmarks/serve_load.py
	.venv/bin/python benchmarks/vllm_startup.py
	.venv/bin/python benchmarks/retrieval_scale.py

bench-quick:
	.venv/bin/python benchmarks/train_throughput.py --quick
	.venv/bin/python benchmarks/eval_throughput.py --quick
	.venv/bin/python benchmarks/serve_load.py --quick
