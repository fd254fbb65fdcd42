# A queue-based resource: listed in the manifest, never served by a load-balanced worker.
from runpod_flash import Endpoint


@Endpoint(name="queue", cpu="cpu3c-1-2")
async def crunch(input_data: dict) -> dict:
    return {"keys": sorted(input_data)}
