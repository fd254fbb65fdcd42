"""The images' bytecode store, built as the images build it, for the real-app benchmark's runtime.

The images install APP_PACKAGES (images/cpu/Dockerfile's list) into /opt/app and compile them into
/opt/flash/bytecode with `python -m runtime.bytecode build`. Here the same list is pip-installed
into a virtualenv in the benchmark's cache folder and compiled by the runtime's Python, once per
list and Python version:

    <cache>/image-bytecode-<key>/venv/    the packages (pip install APP_PACKAGES)
    <cache>/image-bytecode-<key>/store/   the store (root's or this user's, 0755)
    <cache>/image-bytecode-<key>/build.json

`pip install` needs the package index the first time.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import build_real_artifact

ROOT = build_real_artifact.ROOT
DOCKERFILE = ROOT / "images" / "cpu" / "Dockerfile"


def app_packages() -> list[str]:
    """The requirements of the CPU image's APP_PACKAGES argument."""
    found = re.search(r'^ARG APP_PACKAGES="([^"]*)"', DOCKERFILE.read_text(), re.MULTILINE)
    if found is None:
        sys.exit(f"no ARG APP_PACKAGES=\"...\" in {DOCKERFILE}")
    return found.group(1).split()


def ensure(python: str, log=print) -> Path:
    """The store for `python` (the runtime's interpreter), built first when missing."""
    packages = app_packages()
    version = build_real_artifact.python_version(python)
    key = hashlib.sha256(f"{' '.join(packages)}; python {version}".encode()).hexdigest()[:16]
    folder = build_real_artifact.cache_root() / f"image-bytecode-{key}"
    if not (folder / "build.json").exists():
        log(
            f"image bytecode: pip install of {len(packages)} APP_PACKAGES and the store, into {folder}"
        )
        _build(folder, python, packages, version)
    return folder / "store"


def venv_of(store: Path) -> Path:
    """The virtualenv the store was compiled from: the image's /opt/app (FLASH_APP_VENV)."""
    return store.parent / "venv"


def _build(folder: Path, python: str, packages: list[str], version: str) -> None:
    # Built in place (a virtualenv's scripts name its path); build.json, written last, marks it done.
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    try:
        subprocess.run([python, "-m", "venv", str(folder / "venv")], check=True)
        subprocess.run(
            [
                str(folder / "venv" / "bin" / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *packages,
            ],
            check=True,
        )
        site_packages = glob.glob(str(folder / "venv" / "lib" / "python*" / "site-packages"))
        done = subprocess.run(
            [python, "-m", "runtime.bytecode", "build", str(folder / "store"), *site_packages],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        (folder / "build.json").write_text(
            json.dumps(
                {"packages": packages, "python": version, "builder": done.stdout.strip()}, indent=2
            )
            + "\n"
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
