# Hostile input, load and faults against the real entrypoint (included by the Makefile).
#   make test-adversarial                     corpus, short soaks (SOAK_SECONDS=15 each), faults
#   make test-adversarial SOAK_SECONDS=600    the full 10-minute soak, under each server, direct and via HAProxy
# tests/test_adversarial_fast.py runs the fast subset in `make test`.
SOAK_SECONDS ?= 15

.PHONY: test-adversarial

test-adversarial: venv cluster-setup
	SOAK_SECONDS=$(SOAK_SECONDS) $(PY) tests/adversarial/run.py
