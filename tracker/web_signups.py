"""Subscription requests, handled after the answer.

Whether an address is new, pending or confirmed decides what a request does in the store (a new
row and a confirmation email, or nothing). Done before answering, that work shows in the time the
answer takes, and so tells anyone who asks which addresses subscribe. So the request is checked
(the same work for every address), queued here, and answered; one thread then handles the queue.
A request queued when the process dies is lost, as if it had never been sent: the person asks again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

log = logging.getLogger("tracker")
MAX_WAITING = 1000  # requests queued at once; with the per-client limit, reached only by many clients together


class Signups:
    """A queue of subscription work, done in order by one thread ("signups")."""

    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self.max_waiting = max_waiting
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signups")
        self._waiting: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], None]) -> bool:
        """Queue *work*; False when the queue is full (then nothing is queued)."""
        with self._lock:
            if len(self._waiting) >= self.max_waiting:
                return False
            future = self._pool.submit(run_logged, work)
            self._waiting.add(future)
        future.add_done_callback(self._forget)
        return True

    def drain(self, timeout: float = 30) -> None:
        """Wait until the work queued so far is done (tests, and shutdown)."""
        with self._lock:
            waiting = list(self._waiting)
        wait(waiting, timeout=timeout)

    def close(self) -> None:
        """Do what is queued, then stop the thread."""
        self._pool.shutdown(wait=True)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._waiting.discard(future)


def run_logged(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:  # one failed request must not stop the queue; nobody waits for its answer
        log.exception("a subscription request failed")
