"""The engine lives only as long as the worker that started it."""

import os
import threading
import time


def watch_parent(expected_ppid, interval=0.5):
    """Ends the engine (exit 137) when its parent is no longer the worker
    that started it, so a restarted worker never races an orphan for the
    same run folder. Checked at once first: a worker that died while Python
    started leaves the engine already adopted by init."""
    if os.getppid() != expected_ppid:
        os._exit(137)

    def loop():
        while True:
            time.sleep(interval)
            if os.getppid() != expected_ppid:
                os._exit(137)

    threading.Thread(target=loop, name="parent-watch", daemon=True).start()
