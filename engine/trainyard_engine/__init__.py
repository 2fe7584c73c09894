"""Trainyard's Python engine: drives Ultralytics for one job and reports what
happens as JSON lines on a dedicated file descriptor (see DESIGN.md)."""

__version__ = "0.1.0"

import time as _time

# When the engine's process began (before torch and Ultralytics are
# imported): the `started` event reports it, so the service's overhead can be
# split into spawning the engine and the engine's own start.
PROCESS_START = _time.time()
