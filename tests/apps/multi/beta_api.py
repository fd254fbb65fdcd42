# Second load-balanced resource: a worker serving it needs FLASH_RESOURCE_NAME=beta.
from runpod_flash import Endpoint

beta = Endpoint(name="beta", cpu="cpu3c-1-2")


@beta.get("/whoami")
def beta_whoami() -> dict:
    return {"resource": "beta"}


@beta.post("/mul")
def mul(a: float, b: float) -> dict:
    return {"product": a * b}
