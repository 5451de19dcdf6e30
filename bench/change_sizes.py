"""Where the bytes of a changed message go: the benchmark's 50 moves, rendered by the engine, in each language.

Renders bench_changes' change set for six subscribers (one a language) through `tracker send-due`
into an outbox, then breaks each message down: its parts as sent (encoded) and as read (decoded),
the HTML's inline styles, and the calendar's properties, summed over its events.

    .venv/bin/python bench/change_sizes.py            # the table
    .venv/bin/python bench/change_sizes.py --keep DIR # and the .eml files into DIR
"""

from __future__ import annotations

import argparse
import email
import email.policy
import re
import subprocess
import sys
import tempfile
from collections import Counter
from email.message import EmailMessage, Message
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_changes import moved  # noqa: E402
from bench.bench_delivery import LANGUAGES, TRACKER, environment  # noqa: E402

_STYLE = re.compile(rb' style="[^"]*"')


def render(folder: Path) -> dict[str, bytes]:
    """Return one changed message per language, as the engine writes it."""
    url = f"sqlite:///{folder / 'tracker.db'}"
    env = moved(folder, url, len(LANGUAGES), environment(folder, url, 1))
    outbox = folder / "var" / "outbox"
    for old in outbox.glob("*.eml"):
        old.unlink()
    env = {**env, "TRACKER_SMTP_URL": "", "TRACKER_OUTBOX_DIR": str(outbox)}
    subprocess.run([TRACKER, "send-due"], env=env, cwd=folder, check=True, capture_output=True)
    found = {}
    for path in sorted(outbox.glob("*.eml")):
        data = path.read_bytes()
        message = email.message_from_bytes(data, policy=email.policy.default)
        found[str(message["Content-Language"])] = data
    return found


def decoded(part: Message) -> bytes:
    """Return a leaf part's body, transfer encoding undone."""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def breakdown(data: bytes) -> list[tuple[str, int, int]]:
    """Return (part, bytes as sent, bytes decoded) for the headers and each leaf part."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    head = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    rows = [("headers", len(head), len(head))]
    for part in message.walk():
        if part.is_multipart():
            continue
        sent = len(part.as_bytes())
        size = len(decoded(part))
        rows.append((f"{part.get_content_type()} ({part['Content-Transfer-Encoding']})", sent, size))
    return rows


def ics_properties(data: bytes) -> Counter[str]:
    """Return the bytes of each property name of the calendar part, unfolded lines with line ends."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    counts: Counter[str] = Counter()
    for part in message.walk():
        if part.get_content_type() != "text/calendar":
            continue
        text = decoded(part).replace(b"\r\n ", b"")
        for line in text.split(b"\r\n"):
            name = re.split(rb"[;:]", line, maxsplit=1)[0].decode()
            counts[name] += len(line) + 2
    return counts


def html_styles(data: bytes) -> tuple[int, int]:
    """Return the HTML's decoded size and the bytes of its style attributes."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("html",))
    assert part is not None
    html = decoded(part)
    return len(html), sum(len(m) for m in _STYLE.findall(html))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="copy the rendered .eml files into this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        messages = render(Path(tmp))
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        for language, data in messages.items():
            (args.keep / f"changed-{language}.eml").write_bytes(data)
    total = 0
    for language, data in messages.items():
        total += len(data)
        html, styles = html_styles(data)
        print(f"\n{language}: {len(data):,} bytes; HTML {html:,} decoded, of which style attributes {styles:,}")
        for name, sent, decoded in breakdown(data):
            print(f"  {name:45} sent {sent:7,}  decoded {decoded:7,}")
        print("  calendar properties (decoded bytes, all events):")
        for name, size in ics_properties(data).most_common(12):
            print(f"    {name:20} {size:7,}")
    print(f"\nmean: {total / max(len(messages), 1) / 1000:.1f} KB over {len(messages)} languages")


if __name__ == "__main__":
    main()
