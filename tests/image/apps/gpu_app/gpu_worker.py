# A GPU load-balanced endpoint: torch and numpy are not in the `flash build` artifact
# (torch is always left out, numpy is not a requirement), so they come from the image.
from runpod_flash import Endpoint, GpuGroup

api = Endpoint(name="gpu_worker", gpu=GpuGroup.ANY, workers=(1, 3))


@api.get("/health")
async def health() -> dict:
    """Liveness of the service itself."""
    return {"status": "healthy", "service": "gpu"}


@api.post("/stats")
async def stats(numbers: list[float]) -> dict:
    """Mean and spread of the numbers with numpy, and what torch sees of the GPU."""
    import numpy
    import torch

    values = numpy.asarray(numbers, dtype=numpy.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "numpy": numpy.__version__,
        "numpy_file": numpy.__file__,
        "torch": torch.__version__,
        "torch_file": torch.__file__,
        "cuda": torch.cuda.is_available(),
    }
