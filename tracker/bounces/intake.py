"""One bounce in, its outcome committed: the step the SMTP listener (and any other intake) takes per message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from tracker.bounces.policy import SuspendPolicy
from tracker.bounces.reading import read_bounce
from tracker.bounces.recording import Recorded, record_reading
from tracker.store.engine import transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BounceConfig:
    """What reading and recording bounces need: the VERP bounce address, the key that signs it, the policy."""

    secret: bytes
    bounce_address: str
    policy: SuspendPolicy
    max_size: int = 1_000_000  # bytes; a larger message is refused before it is read


class TooLargeError(ValueError):
    """A message larger than BounceConfig.max_size."""


def take_bounce(
    engine: Engine, config: BounceConfig, data: bytes, recipients: Sequence[str], clock: Callable[[], datetime]
) -> Recorded:
    """Read *data* and commit what it says; return only once committed (raise if it could not be)."""
    if len(data) > config.max_size:
        raise TooLargeError(f"a bounce of {len(data)} bytes, more than the {config.max_size} allowed")
    try:
        reading = read_bounce(data, secret=config.secret, bounce_address=config.bounce_address, recipients=recipients)
    except Exception:  # hostile structure (RecursionError at 1,000 nested parts, …): no bounce
        # Reading is pure: whatever it raises is about this message, never the store's state. Nothing
        # is recorded; the caller refuses the message for good (the listener's 554, the poll's flag).
        log.warning("a message to the bounce address could not be read (%d bytes)", len(data), exc_info=True)
        return Recorded("unreadable")
    try:
        with transaction(engine, write=True) as session:
            recorded = record_reading(session, reading, config.policy, clock())
    except IntegrityError:
        # Another intake stored the same report between our look and our insert: it is counted once.
        return Recorded("duplicate", reading.delivery_id)
    log.info("bounce: %s (delivery %s)", recorded.result, recorded.delivery_id)
    return recorded
