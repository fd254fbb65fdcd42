# First load-balanced resource of a two-LB-resource project.
from runpod_flash import Endpoint

alpha = Endpoint(name="alpha", cpu="cpu3c-1-2")


@alpha.get("/whoami")
async def alpha_whoami() -> dict:
    return {"resource": "alpha"}


@alpha.post("/add")
async def add(a: int, b: int = 1) -> dict:
    return {"sum": a + b}
