"""The mailer without an SMTP server: each message written to a folder as an .eml file, with the
same refusals as over SMTP."""

from __future__ import annotations

import asyncio
import email.generator
import email.message
import email.parser
import email.policy
import hashlib
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

from tracker.atomic import write_atomically
from tracker.mail.smtp import BeforeData, DeliveryError, Receipt, envelope_of, flatten, make_envelope


class DirectoryMailer:
    """Write each message to <folder>/<message id>.eml, for running without an SMTP server."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(
        self, message: email.message.EmailMessage, *, sender: str | None = None, recipients: Sequence[str] | None = None
    ) -> Receipt:
        """Write *message* as it would go on the wire; a second send of the same Message-ID replaces it."""
        envelope = make_envelope(message, sender, recipients)  # the same refusals as over SMTP
        return await self._write(flatten(message, utf8=envelope.needs_utf8), eml_name(message))

    async def send_bytes(
        self, data: bytes, *, sender: str, recipients: Sequence[str], before_data: BeforeData | None = None
    ) -> Receipt:
        """Write *data*, a message as it goes on the wire, named after its Message-ID as send does."""
        envelope_of(sender, recipients)  # the same refusals as over SMTP
        if before_data is not None:
            await before_data()
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(data)
        return await self._write(data, eml_name(headers))

    async def _write(self, data: bytes, name: str) -> Receipt:
        try:
            path = await asyncio.to_thread(write_atomically, self.folder / name, data)
        except OSError as exc:
            raise DeliveryError(f"cannot write to {self.folder}: {exc}", permanent=False, stage="write") from exc
        return Receipt(reply=f"written to {path}")

    async def close(self) -> None:
        """Release nothing: each file is closed once written."""


def eml_name(message: email.message.Message) -> str:
    """Name the file after the Message-ID, safely for any file system and uniquely per id."""
    raw = str(message.get("Message-ID", "")).strip().strip("<>") or uuid.uuid4().hex
    safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", raw).lstrip(".")[:120]
    if safe != raw:
        # Different ids can clean up to the same text; a hash of the original keeps them apart.
        safe = f"{safe}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"
    return f"{safe}.eml"
