"""A real IMAP server for tests: Dovecot (Debian's dovecot-imapd) with its own config in a temporary folder."""

from __future__ import annotations

import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "imap-test-password"
NOBODY = 65534  # Dovecot gives mail to no root user: as root, the mailbox belongs to nobody

CONFIG = """
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{base}/mail/%u
first_valid_uid = 1
default_internal_user = {internal}
default_login_user = {login}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass(frozen=True)
class IMAPServer:
    port: int
    user: str = "bounces"

    @property
    def url(self) -> str:
        return f"imap://{self.user}:{PASSWORD}@127.0.0.1:{self.port}/INBOX"

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(self.user, PASSWORD)
        client.select_folder("INBOX")
        return client

    def deliver(self, *messages: bytes) -> None:
        """Put messages in the mailbox as the mail server's delivery would."""
        with self.client() as client:
            for data in messages:
                client.append("INBOX", data)

    def messages(self) -> list[bytes]:
        """The messages still in the mailbox (not deleted)."""
        with self.client() as client:
            uids = client.search(["NOT", "DELETED"])
            fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [fetched[uid][b"BODY[]"] for uid in uids]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def dovecot() -> Iterator[IMAPServer]:
    """Dovecot in the foreground on a free loopback port, stopped (its own process) at the end."""
    if not os.path.exists(DOVECOT):
        why = "Dovecot is not installed (`make browser` installs dovecot-imapd when run as root)"
        if os.environ.get("TRACKER_REQUIRE_BROWSER") == "1":  # CI: every tool `make browser` installs is required
            pytest.fail(f"TRACKER_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="tracker-imap-"))
    base.chmod(0o755)  # the mail processes run as another user when the tests run as root
    root = os.geteuid() == 0
    for name in ("run", "state", "mail"):
        (base / name).mkdir()
    uid, gid = (NOBODY, NOBODY) if root else (os.getuid(), os.getgid())
    if root:
        os.chown(base / "mail", uid, gid)
    me = os.environ.get("USER") or "root"
    port = free_port()
    (base / "dovecot.conf").write_text(CONFIG.format(
        base=base, port=port, uid=uid, gid=gid, password=PASSWORD,
        internal="dovecot" if root else me, login="dovenull" if root else me))  # fmt: skip
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(base / "dovecot.conf")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    try:
        server = IMAPServer(port)
        wait_for(server, process, base)
        yield server
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def wait_for(server: IMAPServer, process: subprocess.Popen[bytes], base: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Dovecot stopped: {(base / 'dovecot.log').read_text(errors='replace')[-2000:]}")
        try:
            with server.client():
                return
        except (OSError, imaplib.IMAP4.error):  # not listening yet, or its login process still starting
            time.sleep(0.1)
    raise RuntimeError("Dovecot did not start in 10 s")
