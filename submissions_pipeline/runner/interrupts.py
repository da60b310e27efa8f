"""The runner's event loop takes the stop signals itself, so a run told to stop does stop.

Dagster (and Python, for Ctrl-C) turn SIGTERM and SIGINT into an exception raised wherever the
main thread is at that moment. Inside an event loop that is often inside one task (an attempt's
heartbeat, Playwright's connection reader), where the exception ends that task alone, or is
swallowed by its cleanup, and the batch carries on: a run told to stop finished its night.
Here the loop handles both signals: it cancels the whole batch (every attempt's cleanup runs and
the browser closes), and the caller gets KeyboardInterrupt, which Dagster reports as an
interrupted step and the launcher answers by giving the run's jobs back.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: The signals that ask a run to stop (Kubernetes and `kill` send SIGTERM, a terminal SIGINT).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_until_stopped(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, except that SIGTERM or SIGINT cancels `main` as a whole and raises
    KeyboardInterrupt once it has unwound. The handlers in place before are restored after.

    Off the main thread no handler can be installed; there it is plain `asyncio.run`.
    """
    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(main)
    received: list[int] = []
    try:
        return asyncio.run(_cancelled_on_signal(main, received))
    except asyncio.CancelledError:
        if not received:
            raise
        raise KeyboardInterrupt(f"stopped by {signal.Signals(received[0]).name}") from None


async def _cancelled_on_signal(main: Coroutine[Any, Any, T], received: list[int]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def stop(sig: int) -> None:
        received.append(sig)
        task.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)
    try:
        result = await main
    finally:
        # A signal in between goes to the handler restored here, not to the process default
        # (which removing the loop's handler would install for a moment).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
                if previous[sig] is not None:  # None: installed outside Python, left as is
                    signal.signal(sig, previous[sig])
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if received:
        raise asyncio.CancelledError
    return result
