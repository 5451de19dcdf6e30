"""Writing files so that readers see all of one or none of it, and a planted symlink is replaced, not followed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600, folder_mode: int = 0o700) -> Path:
    """Write *data* to *path* so that readers see the whole file or none of it.

    The bytes go to a new file in the same folder, renamed over *path*: a symlink at *path* is
    replaced, never written through, and the rename stays on one file system. A folder made on
    the way gets *folder_mode*; the file gets *mode* (the default: private, as mail is).
    """
    path.parent.mkdir(mode=folder_mode, parents=True, exist_ok=True)
    # A leading dot and ".tmp": no reader of the folder mistakes it for a finished file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
