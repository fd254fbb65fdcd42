"""The committed JSON Schema of the manifest is the one the Structs generate, and real manifests fit it."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
from support import ENTRYPOINT, ROOT

SCHEMA = ROOT / "manifests" / "flash_manifest.schema.json"


def test_committed_schema_matches_the_structs():
    generated = subprocess.run(
        [sys.executable, str(ENTRYPOINT), "--print-manifest-schema"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(generated) == json.loads(SCHEMA.read_text()), "run `make schema`"


def test_real_flash_build_manifests_validate_against_it():
    schema = json.loads(SCHEMA.read_text())
    manifests = [
        ROOT / "manifests" / "example" / "flash_manifest.json",
        *sorted((ROOT / "tests" / "apps").glob("*/flash_manifest.json")),
    ]
    assert len(manifests) >= 4
    for path in manifests:
        jsonschema.validate(json.loads(path.read_text()), schema)
    bad = {"resources": {"api": {"functions": [{"module": "m"}]}}}
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("a function without a name must not validate")
