# Many workers behind HAProxy (included by the Makefile).
#   make cluster                      3 workers of the example app on http://127.0.0.1:8080 until Ctrl-C
#   make cluster CLUSTER_WORKERS=5 CLUSTER_PORT=9000 CLUSTER_APP=path/to/app
#   make test-cluster                 the rolling-restart, crash and slow-boot scenarios
CLUSTER_WORKERS ?= 3
CLUSTER_PORT ?= 8080
CLUSTER_APP ?=

.PHONY: cluster cluster-setup test-cluster

cluster-setup:
	bash cluster/setup.sh

cluster: venv cluster-setup
	$(PY) cluster/cluster.py --workers $(CLUSTER_WORKERS) --port $(CLUSTER_PORT) $(if $(CLUSTER_APP),--app $(CLUSTER_APP))

test-cluster: venv cluster-setup
	$(PY) -m pytest tests/cluster -v
