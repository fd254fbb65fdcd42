# `make run` serves an app from a virtualenv holding only the runtime and the app's requirements
# (.venv-run); `make test` and the other targets use .venv with the dev extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_VENV := .venv-run
RUN_PY := $(RUN_VENV)/bin/python
PORT ?= 8000
APP ?= manifests/example
# The app's requirements.txt: beside its manifest, or above `.flash/` for a `flash build` project.
APP_REQUIREMENTS ?= $(firstword $(wildcard $(APP)/requirements.txt $(APP)/../requirements.txt))
APP_STAMP := $(RUN_VENV)/.app-$(shell printf '%s' "$(abspath $(APP_REQUIREMENTS))" | cksum | cut -d' ' -f1)
# Started as root, the worker drops to uid 10001 before loading the app; on a development host whose
# Python lives in root's home that user cannot run it, so local targets run as root there (README:
# Security). Never on a deployed worker, where the runtime refuses FLASH_USER=root.
AS_DEV_USER := $(if $(filter 0,$(shell id -u)),FLASH_USER=$${FLASH_USER:-root})

.PHONY: help venv run dev check check-app test lint format schema clean
.DEFAULT_GOAL := help

help:
	@echo "Serving (APP=path serves another app: a project after flash build, or a build output)"
	@echo "  make run          serve APP (default manifests/example) on http://localhost:$(PORT), docs at /docs"
	@echo "  make dev          the same, restarting the worker when a file of APP changes"
	@echo "  make check-app    load every load-balanced resource of APP without serving"
	@echo "  make check        load the example app without serving (entrypoint.py --check)"
	@echo "Development"
	@echo "  make venv         create .venv with the dev extras (make test and the rest do it)"
	@echo "  make test         run the whole test suite (PYTEST_ARGS=... passes options)"
	@echo "  make test-adversarial  raw hostile payloads, a mixed soak, faults, both servers (SOAK_SECONDS=600: 10 min soaks)"
	@echo "  make lint         ruff (lint and format check), mypy on runtime/, hadolint (lint-images)"
	@echo "  make format       apply ruff's fixes and formatting"
	@echo "  make schema       regenerate manifests/flash_manifest.schema.json"
	@echo "  make clean        remove the virtualenvs and caches"
	@echo "Images"
	@echo "  make image-cpu    build flash-lb-cpu:py\$$IMAGE_PYTHON-latest (IMAGE_PYTHON=3.12; docker or podman)"
	@echo "  make image-gpu    build flash-lb:py\$$IMAGE_PYTHON-latest"
	@echo "  make lint-images  hadolint on every Dockerfile"
	@echo "  make test-image   build and run both images with podman on a stand-in base"
	@echo "Benchmarks"
	@echo "  make bench        the runtime against the reference (~15 min): bench/results/"
	@echo "  make bench-quick  the same with short rounds (~7 min)"
	@echo "  make bench-setup  install wrk and .venv-runtime"
	@echo "  make bench-profile    py-spy on a server under load"
	@echo "  make bench-inprocess  the runtime's own cost per request, no server"
	@echo "  make bench-unpack  the real-app archive unpacked alone: tarfile, the runtime, with app venv links"
	@echo "Many workers"
	@echo "  make cluster      3 workers behind HAProxy on http://127.0.0.1:8080 until Ctrl-C"
	@echo "  make cluster-setup    install HAProxy"
	@echo "  make test-cluster the rolling-restart, crash and slow-boot scenarios"

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The runtime (and watchfiles for `make dev`), as the images install it: no test tools.
$(RUN_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(RUN_VENV)
	$(RUN_PY) -m pip install --quiet --disable-pip-version-check --no-compile -e '.[reload]'
	touch $@

# The app's own requirements, installed once per requirements file (and again when it changes).
$(APP_STAMP): $(RUN_VENV)/.installed $(APP_REQUIREMENTS)
	$(if $(APP_REQUIREMENTS),$(RUN_PY) -m pip install --quiet --disable-pip-version-check --no-compile -r $(APP_REQUIREMENTS))
	touch $@

run: $(APP_STAMP)
	$(AS_DEV_USER) LOG_FORMAT=$${LOG_FORMAT:-console} $(RUN_PY) entrypoint.py serve $(APP) --port $(PORT) $(RUN_ARGS)

dev: RUN_ARGS += --reload
dev: run

check-app: $(APP_STAMP)
	$(AS_DEV_USER) $(RUN_PY) entrypoint.py check $(APP)

check: venv
	$(AS_DEV_USER) FLASH_MODULE_PATH=manifests/example $(PY) entrypoint.py --check

test: venv
	$(PY) -m pytest -q --ignore=tests/image $(PYTEST_ARGS)

schema: venv
	$(PY) entrypoint.py --print-manifest-schema > manifests/flash_manifest.schema.json

PY_SOURCES := runtime tests bench cluster entrypoint.py

lint: venv lint-images
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff check --fix $(PY_SOURCES)
	$(VENV)/bin/ruff format $(PY_SOURCES)

clean:
	rm -rf $(VENV) $(RUN_VENV) .pytest_cache

-include images/images.mk
-include bench/bench.mk
-include cluster/cluster.mk
-include tests/adversarial/adversarial.mk
