"""The engine's half of the event protocol: one JSON object per line on a
file descriptor of its own, never mixed with Ultralytics' stdout."""

import json
import math
import os
import threading
import time


def _clean(value):
    """Make a value JSON-safe: numpy/torch scalars to floats, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


class EventWriter:
    """Writes events; safe from any thread. `progress` events are throttled."""

    def __init__(self, fd=None, stream=None, min_progress_interval=0.25):
        if stream is None:
            stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8", closefd=False)
        self._stream = stream
        self._lock = threading.Lock()
        self._interval = min_progress_interval
        self._last_progress = 0.0

    def emit(self, event, **fields):
        record = {"event": event, "time": round(time.time(), 3), **_clean(fields)}
        line = json.dumps(record, separators=(",", ":"), allow_nan=False)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the worker went away; training output is still on disk

    def progress(self, force=False, **fields):
        now = time.monotonic()
        if not force and now - self._last_progress < self._interval:
            return
        self._last_progress = now
        self.emit("progress", **fields)
