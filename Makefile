# The two commands a newcomer needs (see README):
#   make lab    set everything up and open JupyterLab on the quickstart notebook
#   make test   set everything up and run the whole test suite
.PHONY: lab test setup lint bench

lab: setup
	scripts/lab.sh

test:
	scripts/test.sh

setup:
	scripts/setup.sh

lint: setup
	.venv/bin/ruff check autoglm_lab tests benchmarks hatch_build.py

bench: setup
	.venv/bin/python benchmarks/bench_pool.py
	.venv/bin/python benchmarks/bench_compactor.py
