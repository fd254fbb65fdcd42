# An endpoint whose project declares its dependencies in pyproject.toml only, with an empty
# requirements.txt: `flash build` bundles the runpod_flash source but none of its dependencies,
# nor requests or huggingface_hub, which the routes import. The reference's images have them all.
from runpod_flash import Endpoint

api = Endpoint(name="pyproject_worker", cpu="cpu3c-1-2", workers=(1, 3))


@api.get("/modules")
async def modules() -> dict:
    """Where runpod_flash, its dependencies and the undeclared imports were found."""
    import sys

    import dotenv
    import huggingface_hub
    import pydantic
    import requests

    return {
        "runpod_flash": sys.modules["runpod_flash"].__file__,
        "dotenv": dotenv.__file__,
        "pydantic": pydantic.__file__,
        "requests": requests.__file__,
        "huggingface_hub": huggingface_hub.__file__,
        "huggingface_hub_version": huggingface_hub.__version__,
    }


@api.post("/repo-url")
def repo_url(repo_id: str, filename: str) -> dict:
    """A Hub download URL, built offline by huggingface_hub, and a request prepared by requests."""
    import huggingface_hub
    import requests

    url = huggingface_hub.hf_hub_url(repo_id, filename)
    prepared = requests.Request("GET", url, params={"download": "true"}).prepare()
    return {"url": url, "prepared": prepared.url}
