"""Claimed rows to bytes for the wire: composed and rendered here, or ahead in a helper process.

Sending takes one core (the event loop and its SMTP connections), and composing and rendering
a big fan-out takes about as much again. So once a pass has claimed more than `after` rows, it
starts one helper process that renders the next batches on another core while this one sends.
Both sides run the same pure `prepare`, so the bytes are the same either way. A helper that
cannot start, or dies, only means that rows are rendered in this process again.

The helper is forked when this process has no other thread (`tracker send-due`, before its
pass): it then has the renderer at once. Otherwise (`tracker run`, with its scheduler and
store threads) it is spawned, as a fork could copy a lock some thread holds, and builds its
own renderer. Either way it never touches the store: a forked helper leaves the inherited
database connections alone, and exits without running this process's finalizers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tracker.delivery.compose import Person, Skip, Store, compose
from tracker.delivery.outbox import Claimed
from tracker.emails import Renderer, Sender
from tracker.emails.fields import header_address
from tracker.mail.wire import WireReady, pieces_ready

if TYPE_CHECKING:
    from tracker.mail.signing import Signer

log = logging.getLogger("tracker.delivery.rendering")
PARENT_CHECK = 1.0  # seconds between the helper's looks for its parent
SETTLE = 5.0  # seconds a pass waits at most for its stopped helper to exit (a batch it was rendering ends first)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message ready to send."""

    recipient: str
    data: bytes


# The machine's trouble, not the row's: the same row renders once it passes, so it is retried
# later. Anything else (a data or template bug) gives the same error every time: quarantined.
TRANSIENT = (OSError, MemoryError)


@dataclass(frozen=True, slots=True)
class Unrenderable:
    """A row whose message could not be composed or rendered: set aside, or tried again later if *transient*."""

    error: str
    transient: bool = False


Prepared = Rendered | Skip | Unrenderable


def prepare(renderer: Renderer, row: Claimed, person: Person | None, store: Store, now: datetime) -> Prepared:
    """Compose and render *row*: the message, or why it is not sent."""
    prepared = prepare_parted(renderer, row, person, store, now)
    return prepared.joined() if isinstance(prepared, Parted) else prepared


def prepare_parted(
    renderer: Renderer, row: Claimed, person: Person | None, store: Store, now: datetime
) -> Parted | Skip | Unrenderable:
    """As prepare, the message in pieces (the helper's way: see Parted)."""
    try:
        composed = compose(row, person, store, now)
    except TRANSIENT as exc:
        return Unrenderable(f"could not compose: {exc.__class__.__name__}: {exc}", transient=True)
    if isinstance(composed, Skip):
        return composed
    try:
        pieces = renderer.render_pieces(composed)
        recipient = header_address(composed.recipient.email)  # the envelope names the mailbox the To header names
    except TRANSIENT as exc:
        return Unrenderable(f"could not render: {exc.__class__.__name__}: {exc}", transient=True)
    except Exception as exc:  # one row's bug sets that row aside, not the pass
        log.exception("could not render delivery %d", row.id)
        return Unrenderable(f"could not render: {exc}")
    # Checked here, where it may run in the helper, so the sender need not. The bytes are final: the DKIM
    # signature (render_pieces) covers them as they are, and the check only marks them.
    return Parted(recipient, tuple(pieces), pieces_ready(pieces))


@dataclass(frozen=True, slots=True)
class Parted:
    """A message rendered in pieces, and whether the whole is ready for the wire (checked where it was rendered).

    The helper sends its batch back so: a part many messages share (a changed message's calendar
    of fifty items, the fixed lines of its text) is one object, which pickle writes once a batch.
    Sent back whole, ten thousand change messages were 420 MB through the pipe.
    """

    recipient: str
    pieces: tuple[bytes, ...]
    ready: bool

    def joined(self) -> Rendered:
        data = b"".join(self.pieces)
        return Rendered(self.recipient, WireReady(data) if self.ready else data)


@dataclass(frozen=True)
class Recipe:
    """How to build the same renderer in the helper process."""

    templates: Path | tuple[Path, ...]  # as for Renderer: one folder, or folders searched in turn
    locales: Path
    sender: Sender
    signer: Signer | None = None  # DKIM: the helper signs what it renders, so the sender does not

    def build(self) -> Renderer:
        return Renderer(self.templates, self.locales, self.sender, signer=self.signer)


# --- in the helper process ---------------------------------------------------------------------

_helper: dict[str, Renderer] = {}  # the helper's renderer, set once by its initializer


def _start_helper(source: Renderer | Recipe, parent: int) -> None:
    # Ctrl-C reaches the whole process group: the sending process stops gracefully and closes
    # the helper; an interrupt here would come back to it as a batch's result instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_end_with, args=(parent,), name="watch-parent", daemon=True).start()
    _helper["renderer"] = source if isinstance(source, Renderer) else source.build()


def _end_with(parent: int) -> None:
    """Exit once the sending process is gone (killed, it cannot say so; a fork would wait on the queue forever)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    os._exit(0)


def _ready() -> bool:
    return "renderer" in _helper


@dataclass(frozen=True, slots=True)
class Events:
    """A batch's own part of its Store: the events its notices answer (the views go once, see RenderHelper)."""

    milestones: dict[int, tuple[str, str]]
    notes: dict[int, str]


_stores: dict[str, Store] = {}  # the helper's Store: its views, as the sending process last sent them


def _prepare_batch(
    batch: Sequence[tuple[Claimed, Person | None]], views: Store | None, events: Events, now: datetime
) -> list[Parted | Skip | Unrenderable]:
    renderer = _helper["renderer"]
    if views is not None:  # the sending process read the milestones again: these from now on
        _stores["views"] = views
    store = _stores["views"]
    if events.milestones:
        store = replace(store, event_milestones=events.milestones, event_notes=events.notes)
    return [prepare_parted(renderer, row, person, store, now) for row, person in batch]


# --- in the sending process --------------------------------------------------------------------


def usable_cores() -> int:
    """The cores this process may run on (a container or `taskset` may allow fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class RenderHelper:
    """One helper process for one pass, started once the pass has claimed more than *after* rows."""

    def __init__(self, renderer: Renderer, recipe: Recipe, *, after: int) -> None:
        self.renderer, self.recipe = renderer, recipe
        # One core is the sender's own: without a second, a helper would only take turns with it.
        self.after = after if usable_cores() > 1 else 0
        self.claimed = 0
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._ready: concurrent.futures.Future[bool] | None = None
        self._failed = False
        self._stopping: list[threading.Thread] = []  # stopped helpers' manager threads, until they end
        self._sent: tuple[object, object] | None = None  # the views and set-aside the helper has (identities)

    def wanted(self, due: int) -> bool:
        """Tell whether *due* rows are enough for a helper, and none runs or failed yet."""
        return bool(self.after) and due > self.after and self._pool is None and not self._failed

    def expect(self, due: int) -> None:
        """Start the helper now if *due* rows are enough for one."""
        if self.wanted(due):
            self._start()

    def note_claimed(self, count: int) -> None:
        """Count rows claimed this pass; start the helper when they are enough."""
        self.claimed += count
        self.expect(self.claimed)

    @property
    def ready(self) -> bool:
        """Tell whether batches can go to the helper now (it has started and built its renderer)."""
        if self._ready is None or not self._ready.done():
            return False
        if self._ready.cancelled() or self._ready.exception() is not None:
            if not self._failed:
                reason = "cancelled" if self._ready.cancelled() else self._ready.exception()
                log.warning("the render helper did not start; rendering in this process: %s", reason)
            self._give_up()
            return False
        return not self._failed

    def wait_ready(self, timeout: float) -> bool:
        """Block until the helper has started (True) or cannot (False); for a caller that needs it now."""
        if self._ready is None:
            return False
        with contextlib.suppress(Exception):  # its failure is told by `ready`
            self._ready.result(timeout)
        return self.ready

    @property
    def pid(self) -> int | None:
        """The helper's process id, while it runs."""
        processes = getattr(self._pool, "_processes", None) or {}
        return next(iter(processes), None)

    async def prepare(
        self, batch: Sequence[tuple[Claimed, Person | None]], store: Store, now: datetime
    ) -> list[Prepared] | None:
        """Return *batch* composed and rendered by the helper; None if it is not ready (render here)."""
        if not self.ready or self._pool is None:
            return None
        # The views go once for as long as the sending process keeps them (until an event changes one):
        # pickled with every batch, they were most of a small batch's cost, twenty thousand views at
        # an organisation's size; and unpickled anew, each batch's first message compared them all
        # with the renderer's cached ones, field by field.
        views: Store | None = None
        if self._sent is None or self._sent[0] is not store.views or self._sent[1] is not store.set_aside:
            # Without the lines memo: it is pickled in the queue's thread while this loop may still add
            # to it (rows composed here), and a dict changing size under pickle failed the batch and the helper.
            views = Store(store.views, {}, {}, store.set_aside)
            self._sent = (store.views, store.set_aside)
        events = Events(dict(store.event_milestones), dict(store.event_notes))
        try:
            done = await asyncio.wrap_future(self._pool.submit(_prepare_batch, batch, views, events, now))
        except Exception:  # a dead helper, or a batch it could not take: render here
            log.warning("the render helper failed; rendering in this process", exc_info=True)
            self._give_up()
            return None
        return [each.joined() if isinstance(each, Parted) else each for each in done]

    def close(self) -> None:
        """Stop the helper (it holds nothing but a renderer); the next pass starts afresh."""
        pool, self._pool, self._ready = self._pool, None, None
        self.claimed, self._failed, self._sent = 0, False, None
        if pool is not None:
            self._stop(pool)

    def settle(self, timeout: float = SETTLE) -> None:
        """Wait, at most *timeout* seconds each, until stopped helpers have exited.

        Without it, a process exiting right after a pass (`tracker send-due`) could race the
        executor's own thread closing its wake-up pipe: CPython 3.11 then printed a traceback,
        "OSError: [Errno 9] Bad file descriptor", from concurrent.futures' exit handler.
        """
        while self._stopping:
            with contextlib.suppress(RuntimeError):  # a thread that never started
                self._stopping.pop().join(timeout)

    def _stop(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        # The helper holds nothing but a renderer, and what it still renders is no use once the pass
        # is over: ended now, so that the executor's thread ends at once too (a helper still starting,
        # or rendering a batch, kept it, and settle() waited its whole timeout at every pass).
        for process in list((getattr(pool, "_processes", None) or {}).values()):  # private, as is the thread
            with contextlib.suppress(Exception):
                process.terminate()
        manager = getattr(pool, "_executor_manager_thread", None)  # shutdown forgets it
        pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(manager, threading.Thread):
            self._stopping.append(manager)

    def _start(self) -> None:
        self._sent = None  # a new helper has no views yet
        alone = threading.active_count() == 1
        source = self.renderer if alone else self.recipe  # a fork inherits it; a spawned helper builds it
        try:
            context = multiprocessing.get_context("fork" if alone else "spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=context, initializer=_start_helper, initargs=(source, os.getpid())
            )
            self._ready = self._pool.submit(_ready)
            log.info("rendering ahead in a helper process (%s)", context.get_start_method())
        except Exception:  # no processes allowed, no memory: rendering here still works
            log.warning("could not start a render helper; rendering in this process", exc_info=True)
            self._give_up()

    def _give_up(self) -> None:
        self._failed = True
        if self._pool is not None:
            self._stop(self._pool)
