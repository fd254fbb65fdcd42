# Setup is two commands: `make run` and `make test`; both create the virtual environment.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: venv run check test test-fast lint schema clean
.DEFAULT_GOAL := help

help:
	@echo "make run        serve the example app (manifests/example) on :$(PORT)"
	@echo "make test       run the whole test suite"
	@echo "make check      load the example app without serving (entrypoint.py --check)"
	@echo "make schema     regenerate manifests/flash_manifest.schema.json"
	@echo "make lint       lint the Dockerfiles"
	@echo "make image-cpu | image-gpu | test-image | bench | cluster | test-cluster"

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: venv
	FLASH_MODULE_PATH=manifests/example PORT=$(PORT) LOG_FORMAT=$${LOG_FORMAT:-console} $(PY) entrypoint.py

check: venv
	FLASH_MODULE_PATH=manifests/example $(PY) entrypoint.py --check

test: venv
	$(PY) -m pytest -q --ignore=tests/image $(PYTEST_ARGS)

schema: venv
	$(PY) entrypoint.py --print-manifest-schema > manifests/flash_manifest.schema.json

lint: venv lint-images

clean:
	rm -rf $(VENV) .pytest_cache

-include images/images.mk
-include bench/bench.mk
-include cluster/cluster.mk
