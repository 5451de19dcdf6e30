"""Uploaded files kept between a preview and its confirmation: a temporary file per upload, named by a random id.

The id is bound to the user who uploaded (part of the file's name), a file is deleted once used,
and any left longer than KEPT (a preview never confirmed) goes at the next upload.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

MAX_UPLOAD = 10 * 1024 * 1024  # bytes: 100,000 subscribers of CSV is about 8 MB
KEPT = 3600.0  # seconds an unconfirmed upload is kept
ID = re.compile(r"[A-Za-z0-9_-]{22}")
COPY = 64 * 1024


class UploadTooLargeError(ValueError):
    pass


class Uploads:
    """A folder of uploads waiting for their confirmation."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or Path(tempfile.gettempdir()) / f"tracker-uploads-{os.getuid()}"

    def keep(self, source: BinaryIO, owner: int, limit: int = MAX_UPLOAD) -> str:
        """Copy *source* (at most *limit* bytes) into a new file of *owner*'s; return its id."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self.sweep()
        upload = secrets.token_urlsafe(16)
        path = self.path(owner, upload)
        assert path is not None
        copied = 0
        with path.open("xb") as target:
            os.chmod(path, 0o600)
            while block := source.read(COPY):
                copied += len(block)
                if copied > limit:
                    break
                target.write(block)
        if copied > limit:
            path.unlink(missing_ok=True)
            raise UploadTooLargeError(f"larger than {limit // (1024 * 1024)} MB")
        return upload

    def path(self, owner: int, upload: str) -> Path | None:
        """Where *owner*'s upload *upload* is kept; None for an id that is not one of ours."""
        if not ID.fullmatch(upload):
            return None
        return self.folder / f"{owner}-{upload}.csv"

    def find(self, owner: int, upload: str) -> Path | None:
        path = self.path(owner, upload)
        return path if path is not None and path.is_file() else None

    def sweep(self) -> None:
        """Delete uploads never confirmed."""
        limit = time.time() - KEPT
        for path in self.folder.glob("*.csv"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink(missing_ok=True)
            except OSError:
                continue  # another process took it meanwhile
