"""Many runtime workers behind HAProxy: the driver (cluster.py) and a load loop (load.py)."""
