"""Runs LocalStack's runtime as `python -m localstack.runtime.main` does, with two changes for host mode.

On SIGTERM, LocalStack's shutdown thread calls `loop.stop()` on the hypercorn server's asyncio loop
from outside that loop. `stop()` is not thread-safe: it sets a flag without waking the selector, so
the loop can stay in `select()` for good (seen here: the gateway port closed, the process alive and
idle, DynamoDB Local still running, a second SIGTERM ignored). Scheduling the stop on the loop
with `call_soon_threadsafe` wakes it; the runtime then cleans up (DynamoDB Local too) and exits.

After the runtime's own cleanup ("[shutdown] Completed" in a DEBUG log) the interpreter's teardown of
LocalStack's large module graph took 10-20 s of CPU here; the process ends with os._exit instead.
"""
import logging
import os
import sys

from localstack.runtime.main import main
from localstack.runtime.server.hypercorn import HypercornRuntimeServer


def _shutdown(self: HypercornRuntimeServer) -> None:
    loop = self.loop
    loop.call_soon_threadsafe(self._close.set)  # ends hypercorn's serve() (its shutdown trigger)
    loop.call_soon_threadsafe(loop.stop)


HypercornRuntimeServer.shutdown = _shutdown

if __name__ == "__main__":
    code: int | str | None = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)
