"""`tracker` command line: parse options, call one function, print the result.

One module per group of commands; importing them registers the commands on `app`.
"""

from __future__ import annotations

import gc
import os
import sys

from tracker.cli import bounces, deliveries, events, messages, serving, subscribers, timelines, users
from tracker.cli.common import app, err
from tracker.cli.console import styled

__all__ = ["app", "bounces", "deliveries", "events", "main", "messages", "serving", "subscribers", "timelines", "users"]


def main() -> None:
    """Console entry point: no traceback reaches the user, whatever happens."""
    # What the imports made lives as long as the process: the collector need not walk it again
    # at each collection, nor at exit, where that took a large part of every short command.
    gc.freeze()
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("TRACKER_DEBUG"):
            raise
        err.print(styled(("error:", "red"), f" {exc.__class__.__name__}: {exc}"))
        err.print("(set TRACKER_DEBUG=1 to see the traceback)")
        sys.exit(70)
