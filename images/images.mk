# Images: included by the Makefile. Build from the repository root with docker (when its engine
# answers) or podman, e.g. `make image-cpu PYTHON_VERSION=3.13`.
PYTHON_VERSION ?= 3.12
CPU_BASE_IMAGE ?= python:$(PYTHON_VERSION)-slim
GPU_BASE_IMAGE ?= nvidia/cuda:12.8.1-runtime-ubuntu24.04
IMAGE_CPU ?= flash-worker-cpu:py$(PYTHON_VERSION)
IMAGE_GPU ?= flash-worker-gpu:py$(PYTHON_VERSION)
# The docker client can be installed without an engine: use it only when `docker info` succeeds.
CONTAINER_ENGINE ?= $(shell if docker info >/dev/null 2>&1; then echo docker; \
	elif command -v podman >/dev/null 2>&1; then echo podman; fi)
# podman writes OCI images by default, which drop HEALTHCHECK; the docker format keeps it.
IMAGE_BUILD_FLAGS ?= $(if $(filter podman,$(CONTAINER_ENGINE)),--format docker)
DOCKERFILES := images/cpu/Dockerfile images/gpu/Dockerfile images/example/Dockerfile \
	$(wildcard tests/image/apps/*/Dockerfile)

.PHONY: image-cpu image-gpu test-image lint-images

image-cpu:
	@test -n "$(CONTAINER_ENGINE)" || { echo "no container engine: start docker or install podman" >&2; exit 1; }
	$(CONTAINER_ENGINE) build $(IMAGE_BUILD_FLAGS) -f images/cpu/Dockerfile \
		--build-arg PYTHON_VERSION=$(PYTHON_VERSION) --build-arg BASE_IMAGE=$(CPU_BASE_IMAGE) \
		-t $(IMAGE_CPU) .

image-gpu:
	@test -n "$(CONTAINER_ENGINE)" || { echo "no container engine: start docker or install podman" >&2; exit 1; }
	$(CONTAINER_ENGINE) build $(IMAGE_BUILD_FLAGS) -f images/gpu/Dockerfile \
		--build-arg PYTHON_VERSION=$(PYTHON_VERSION) --build-arg BASE_IMAGE=$(GPU_BASE_IMAGE) \
		-t $(IMAGE_GPU) .

# Builds both Dockerfiles on a stand-in base with podman and runs the images (tests/image).
test-image: venv
	bash images/test/setup.sh
	FLASH_IMAGE_TEST=1 $(PY) -m pytest tests/image -p no:cacheprovider -rfEsP --durations=0 $(PYTEST_ARGS)

lint-images: venv
	$(VENV)/bin/hadolint $(DOCKERFILES)
