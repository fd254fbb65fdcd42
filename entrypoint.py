#!/usr/bin/env python3
"""Start the worker: serve the Flash app at FLASH_MODULE_PATH (see README for the settings)."""

import sys

from runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
