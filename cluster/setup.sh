#!/usr/bin/env bash
# Install what the cluster targets and tests need: HAProxy from Debian's packages.
# Idempotent: does nothing when haproxy is already on PATH. The load generator is the
# Python loop in cluster/load.py (httpx, already a dev dependency), so nothing else is needed.
set -euo pipefail

if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
    echo "haproxy present: $(PATH="$PATH:/usr/sbin" haproxy -v | head -n1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends haproxy
# The package enables a system service with its own config; the cluster runs its own
# haproxy processes on loopback ports, so the packaged one is left stopped where possible.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
echo "haproxy installed: $(PATH="$PATH:/usr/sbin" haproxy -v | head -n1)"
