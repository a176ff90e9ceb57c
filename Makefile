# Both targets do their own set-up (Debian packages, kernel-header links, tracefs, .venv).
.PHONY: setup demo test bench
setup:
	@./scripts/setup.sh
demo: setup
	.venv/bin/workbench demo
test: setup
	.venv/bin/pytest -q
bench: setup
	.venv/bin/python bench/launch.py
	.venv/bin/python bench/overhead.py
	.venv/bin/python bench/probe_costs.py
