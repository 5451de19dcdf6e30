"""Requests per client over a sliding window, in memory (one process; each worker counts its own)."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_KEYS = 10_000


class SlidingWindow:
    """Allow at most *limit* hits per key in any *window* seconds."""

    def __init__(
        self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self.limit, self.window, self.clock, self.max_keys = limit, window, clock, max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def waiting(self, key: str) -> float:
        """The seconds until a hit for *key* would be allowed (0: now), without counting one."""
        now = self.clock()
        with self._lock:
            hits = self._hits.get(key)
            live = [at for at in hits or () if at > now - self.window]
            return live[0] + self.window - now if len(live) >= self.limit else 0.0

    def hit(self, key: str) -> float:
        """Count a hit for *key*; return 0 when it is allowed, else the seconds until one would be."""
        now = self.clock()
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            self._hits[key] = hits  # most recently seen last: the idle leave first
            if len(hits) >= self.limit:
                return hits[0] + self.window - now  # a refused hit is not counted: waiting is enough
            hits.append(now)
            while len(self._hits) > self.max_keys:  # bounded memory, whatever the number of clients
                self._hits.popitem(last=False)
            return 0.0


def client_key(host: str | None) -> str:
    """The key a client is limited by: its IPv4 address, or the /64 an IPv6 host usually has to itself."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
