# Benchmarks: the runtime against the reference (runpod_flash's FastAPI app on uvicorn).
# Included by the Makefile; uses its VENV, PY and venv target.
.PHONY: bench bench-quick bench-setup bench-profile bench-inprocess bench-unpack
RUNTIME_VENV := .venv-runtime

bench-setup: $(RUNTIME_VENV)/.installed
	bash bench/setup.sh

# The runtime alone (with the uvicorn extra), as the images install it.
$(RUNTIME_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install --quiet -e '.[uvicorn]'
	touch $@

## bench: full run; writes bench/results/{results.md,results.json,chart.png}
## BENCH_ARGS="--phases cold,realapp --merge" runs some phases and keeps the others' results.
## The realapp phase builds its artifact once (flash build, network) into /var/tmp/flash-bench-cache.
bench: venv bench-setup
	$(PY) bench/run.py $(BENCH_ARGS)

## bench-quick: short rounds (3 boots per real-app path instead of 5), same outputs
bench-quick: venv bench-setup
	$(PY) bench/run.py --quick $(BENCH_ARGS)

## bench-profile: py-spy on the runtime under load; writes bench/results/profile.*
bench-profile: venv bench-setup
	$(PY) bench/profile.py $(PROFILE_ARGS)

## bench-inprocess: the runtime's own cost per request, no server (INPROCESS_ARGS="--profile" for cProfile)
bench-inprocess: venv
	$(PY) bench/inprocess.py $(INPROCESS_ARGS)

## bench-unpack: the real-app archive unpacked alone (tarfile, the runtime, the runtime with app venv
## links), alternating, pinned to CPU 0 (UNPACK_ARGS="--rounds 5 --into /var/tmp")
bench-unpack: venv bench-setup
	taskset -c 0 $(RUNTIME_VENV)/bin/python bench/apps/unpack_alone.py $(UNPACK_ARGS)
