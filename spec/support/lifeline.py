"""Shared by the spec servers: end the process once the process that
started it (the Lua interpreter running the specs) is gone."""
import os
import threading
import time


def watch(pid, on_exit=None, every=None):
    """Calls on_exit() (default: exit at once) when process `pid` is gone;
    every(), if given, runs on each check."""

    def loop():
        while True:
            time.sleep(0.3)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                (on_exit or (lambda: os._exit(0)))()
            except PermissionError:
                pass
            if every:
                every()

    threading.Thread(target=loop, daemon=True).start()
