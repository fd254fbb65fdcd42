"""An app that pins its own (old) Starlette and one package the runtime does not have."""

import asyncio
import os

import humanize
import starlette


async def versions() -> dict:
    return {
        "starlette": starlette.__version__,
        "starlette_file": starlette.__file__,
        "humanize_file": humanize.__file__,
        "size": humanize.naturalsize(31457280, binary=True),
        "uid": os.getuid(),
    }


async def slow(seconds: float) -> dict:
    await asyncio.sleep(seconds)
    return {"slept": seconds}
