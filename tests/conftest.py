from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import ROOT, Worker

CORE_APP = Path(__file__).parent / "core_app"
EXAMPLE_APP = ROOT / "manifests" / "example"


@pytest.fixture(scope="module")
def core_worker():
    """One runtime serving tests/core_app for a whole test module."""
    with Worker(CORE_APP, env={"FLASH_SYNC_THREADS": "4"}) as worker:
        yield worker.wait_ready()


def write_app(folder: Path, manifest: dict | str | None, files: dict[str, str]) -> Path:
    """An application folder with the given manifest (a dict, raw text, or none) and modules."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (folder / "flash_manifest.json").write_text(text)
    return folder


def lb_manifest(*functions: tuple[str, str, str, str], name: str = "api", **extra) -> dict:
    """A manifest in Flash's format with one load-balanced resource: (module, function, method, path)."""
    return {
        "version": "1.0",
        "resources": {
            name: {
                "is_load_balanced": True,
                "functions": [
                    {"name": fn, "module": mod, "http_method": method, "http_path": path}
                    for mod, fn, method, path in functions
                ],
                **extra,
            }
        },
    }
