"""Subscription requests, handled after the answer.

Whether an address is new, pending or confirmed decides what a request does in the store (a new
row and a confirmation email, or nothing). Done before answering, that work shows in the time the
answer takes, and so tells anyone who asks which addresses subscribe. So the request is checked
(the same work for every address), a place in the queue is reserved (or 503 answered when it is
full), the answer is sent, and only then is the work queued here: queued before, it would compete
with sending the answer. One thread handles the queue.
The person was told to look for an email, so a store that fails for a while (a lock held by a
long sync, a database restarting) is waited out, for about two minutes, rather than the request
dropped. A request queued when the process dies is lost, as if it had never been sent: the person
asks again.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial

from sqlalchemy.exc import DBAPIError

log = logging.getLogger("tracker")
MAX_WAITING = 1000  # requests queued at once; with the per-client limit, reached only by many clients together
RETRY_DELAYS = (0.5, 1, 2, 4, 8, 16, 32, 64)  # seconds between tries when the store fails: two minutes in all
RESERVED_FOR = 60.0  # seconds a reserved place waits for its work: sending an answer takes far less
DRAIN_STEP = 0.005  # seconds between looks while work is reserved but not yet queued


class Signups:
    """A queue of subscription work, done in order by one thread ("signups")."""

    def __init__(self, max_waiting: int = MAX_WAITING, retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        self.max_waiting = max_waiting
        self.retry_delays = tuple(retry_delays)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signups")
        self._waiting: set[Future[None]] = set()
        self._reserved: dict[int, float] = {}  # reservation → when it was made (time.monotonic)
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def reserve(self) -> int | None:
        """Hold a place for work queued later (after the answer); None when the queue is full."""
        with self._lock:
            self._forget_stale()
            if len(self._waiting) + len(self._reserved) >= self.max_waiting:
                return None
            number = next(self._numbers)
            self._reserved[number] = time.monotonic()
            return number

    def start(self, reservation: int, work: Callable[[], None]) -> None:
        """Queue *work* in the place *reservation* holds."""
        with self._lock:
            self._reserved.pop(reservation, None)
            future = self._queue(work)
        future.add_done_callback(self._forget)

    def submit(self, work: Callable[[], None]) -> bool:
        """Queue *work*; False when the queue is full (then nothing is queued)."""
        reservation = self.reserve()
        if reservation is None:
            return False
        self.start(reservation, work)
        return True

    def drain(self, timeout: float = 30) -> None:
        """Wait until the work queued or reserved so far is done (tests, and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                self._forget_stale()
                waiting, reserved = list(self._waiting), bool(self._reserved)
            if not waiting and not reserved:
                return
            if waiting:
                wait(waiting, timeout=max(deadline - time.monotonic(), 0))
            else:
                time.sleep(DRAIN_STEP)

    def close(self) -> None:
        """Do what is queued, then stop the thread."""
        self._pool.shutdown(wait=True)

    def _queue(self, work: Callable[[], None]) -> Future[None]:
        future = self._pool.submit(run_logged, partial(run_retried, work, self.retry_delays))
        self._waiting.add(future)
        return future

    def _forget_stale(self) -> None:
        # A place whose work never came (sending the answer failed, and the work with it) is freed.
        now = time.monotonic()
        for number in [n for n, at in self._reserved.items() if now - at > RESERVED_FOR]:
            del self._reserved[number]

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._waiting.discard(future)


def run_retried(work: Callable[[], None], delays: Sequence[float]) -> None:
    """Run *work*; while the store fails (DBAPIError: its transaction rolled back), wait and run it again."""
    for delay in delays:
        try:
            work()
            return
        except DBAPIError as exc:
            log.warning("a subscription request waits %.1f s for the store: %s", delay, exc.__class__.__name__)
            time.sleep(delay)
    work()


def run_logged(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:  # one failed request must not stop the queue; nobody waits for its answer
        log.exception("a subscription request failed")
