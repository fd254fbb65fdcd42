# A CPU load-balanced endpoint in the style of flash-examples' load balancer:
# `flash build` turns it into the artifact the image test mounts where the platform does.
from runpod_flash import Endpoint

api = Endpoint(name="lb_worker", cpu="cpu3c-1-2", workers=(1, 3))


@api.get("/health")
async def health() -> dict:
    """Liveness of the service itself."""
    return {"status": "healthy", "service": "cpu"}


@api.post("/analyze")
async def analyze(text: str, top: int = 2) -> dict:
    """Count the words of a text and name the most frequent ones."""
    from collections import Counter

    if not text.strip():
        raise ValueError("text cannot be empty")
    words = text.lower().split()
    common = Counter(words).most_common(top)
    return {"words": len(words), "characters": len(text), "top": [word for word, _ in common]}


@api.get("/items/{item_id}")
async def item(item_id: int, verbose: bool = False) -> dict:
    """One item by id; `verbose` adds its label."""
    found = {"id": item_id}
    if verbose:
        found["label"] = f"item-{item_id}"
    return found


@api.post("/whoami")
def whoami() -> dict:
    """Who the handler runs as and where its modules came from (a plain `def`, run in a thread)."""
    import os
    import sys

    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "cwd": os.getcwd(),
        "runpod_flash": sys.modules["runpod_flash"].__file__,
    }
