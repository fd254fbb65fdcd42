"""Stand-in for torch 2.9.1+cu128 in the GPU image test: the names an app's route touches."""

from . import cuda, version

__version__ = "2.9.1+cu128"
__all__ = ["cuda", "version", "__version__"]
