# Images: included by the Makefile. Build from the repository root with docker (when its engine
# answers) or podman, e.g. `make image-cpu IMAGE_PYTHON=3.13`. Names and tags map one to one onto the
# reference's (runpod/flash-lb-cpu:py3.12-latest -> flash-lb-cpu:py3.12-latest and
# flash-lb-cpu:py3.12-<version>; runpod/flash-lb -> flash-lb), the version from pyproject.toml.
# PYTHON is the Makefile's interpreter for the dev venv; IMAGE_PYTHON is the images' Python.
IMAGE_PYTHON ?= 3.12
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_SOURCE ?= $(shell git remote get-url origin 2>/dev/null)
CPU_BASE_IMAGE ?= python:$(IMAGE_PYTHON)-slim
GPU_BASE_IMAGE ?= runpod/pytorch:1.0.3-cu1281-torch291-ubuntu2204
IMAGE_CPU ?= flash-lb-cpu
IMAGE_GPU ?= flash-lb
# The docker client can be installed without an engine: use it only when `docker info` succeeds.
CONTAINER_ENGINE ?= $(shell if docker info >/dev/null 2>&1; then echo docker; \
	elif command -v podman >/dev/null 2>&1; then echo podman; fi)
# podman writes OCI images by default, which drop HEALTHCHECK; the docker format keeps it.
IMAGE_BUILD_FLAGS ?= $(if $(filter podman,$(CONTAINER_ENGINE)),--format docker)
# APP_PACKAGES, when given (even empty: `make image-cpu APP_PACKAGES=` builds the lean image),
# replaces the Dockerfiles' list of packages installed for the apps.
IMAGE_BUILD_ARGS = --build-arg PYTHON=$(IMAGE_PYTHON) --build-arg VERSION=$(IMAGE_VERSION) \
	--build-arg REVISION=$(IMAGE_REVISION) --build-arg SOURCE=$(IMAGE_SOURCE) \
	$(if $(filter undefined,$(origin APP_PACKAGES)),,--build-arg "APP_PACKAGES=$(APP_PACKAGES)")
DOCKERFILES := images/cpu/Dockerfile images/gpu/Dockerfile images/example/Dockerfile \
	$(wildcard tests/image/apps/*/Dockerfile) $(wildcard tests/image/standin/*/Dockerfile)

.PHONY: image-cpu image-gpu test-image lint-images

image-cpu:
	@test -n "$(CONTAINER_ENGINE)" || { echo "no container engine: start docker or install podman" >&2; exit 1; }
	$(CONTAINER_ENGINE) build $(IMAGE_BUILD_FLAGS) -f images/cpu/Dockerfile $(IMAGE_BUILD_ARGS) \
		--build-arg BASE_IMAGE=$(CPU_BASE_IMAGE) \
		-t $(IMAGE_CPU):py$(IMAGE_PYTHON)-$(IMAGE_VERSION) -t $(IMAGE_CPU):py$(IMAGE_PYTHON)-latest .

image-gpu:
	@test -n "$(CONTAINER_ENGINE)" || { echo "no container engine: start docker or install podman" >&2; exit 1; }
	$(CONTAINER_ENGINE) build $(IMAGE_BUILD_FLAGS) -f images/gpu/Dockerfile $(IMAGE_BUILD_ARGS) \
		--build-arg BASE_IMAGE=$(GPU_BASE_IMAGE) \
		-t $(IMAGE_GPU):py$(IMAGE_PYTHON)-$(IMAGE_VERSION) -t $(IMAGE_GPU):py$(IMAGE_PYTHON)-latest .

# Builds both Dockerfiles on stand-in bases with podman and runs the images (tests/image).
test-image: venv
	bash images/test/setup.sh
	FLASH_IMAGE_TEST=1 $(PY) -m pytest tests/image -p no:cacheprovider -rfEsP --durations=0 $(PYTEST_ARGS)

lint-images: venv
	$(VENV)/bin/hadolint $(DOCKERFILES)
