"""Channels as operators run them: real `tracker run` processes posting to a real, slow HTTP receiver, and a kill -9."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.processes import Site, due_in, running_site, wait_for
from tests.support.receiver import Answer, Receiver
from tests.support.smtp_server import SMTPTestServer

pytestmark = [pytest.mark.slow, pytest.mark.serial]

CONNECTIONS = 4
CHANNELS = 40
SECRET = "a-webhook-secret-of-some-length-0123"


@pytest.fixture
def site(tmp_path: Path, database_url: str, smtp: SMTPTestServer) -> Iterator[Site]:
    with running_site(tmp_path, database_url, smtp) as site:
        yield site


def write_channels(site: Site, url: str) -> Path:
    tables = [f'[channels.hook-{n:02d}]\nkind = "webhook"\nurl = "{url}/{n:02d}"\nsecret_env = "TRACKER_TEST_SECRET"\n'
              'audiences = ["membership"]\n' for n in range(CHANNELS)]  # fmt: skip
    path = site.folder / "channels.toml"
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def test_a_kill_mid_post_loses_nothing_and_posts_again_at_most_one_per_connection(site: Site) -> None:
    with Receiver(default=Answer(delay=0.25)) as receiver:  # slow: a kill finds posts in flight
        channels = write_channels(site, receiver.url)
        site.write_deadline("comments", due_in(timedelta(hours=2)), ["3h"])  # its reminder fell due an hour ago
        settings = {"smtp_connections": CONNECTIONS, "lease": 3, "channels_file": channels, "test_secret": SECRET}
        crashing = site.start(**settings)
        wait_for(lambda: len(receiver.received) >= 8, 60, "the first posts")

        crashing.kill()
        at_crash = len(receiver.received)
        site.start(**settings)  # a short lease: the dead job's rows come back fast
        everyone = {f"/{n:02d}" for n in range(CHANNELS)}
        wait_for(lambda: {r.path for r in receiver.received} >= everyone, 60, "a post to every channel")
        site.wait_settled()
        time.sleep(0.5)  # a post answered after the last outcome would be counted too

        posts = Counter(r.headers["tracker-delivery"] for r in receiver.received)
        twice = sum(n - 1 for n in posts.values())
        print(f"received {at_crash} before the crash, {len(receiver.received)} in all, {twice} twice")
        assert at_crash < CHANNELS, "the job finished before it could be killed"
        assert len(posts) == CHANNELS and twice <= CONNECTIONS
        for request in receiver.received:  # a repeated post is the same post: same id, same body
            assert request.json()["id"] == request.headers["tracker-delivery"]
        sent = site.deliveries("--status", "sent")
        assert len(sent) == CHANNELS
        assert {row["to"] for row in sent} == {f"channel:hook-{n:02d} (webhook)" for n in range(CHANNELS)}
