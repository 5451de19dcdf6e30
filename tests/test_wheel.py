"""Installable anywhere: the built wheel carries its templates and catalogs, and runs from any folder.

The wheel is built from a copy of the sources and installed into a fresh virtual environment
that cannot see the checkout; its dependencies are the project environment's, read through a
`.pth` line (nothing is downloaded). Every command then runs from an empty folder.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import site
import subprocess
import sys
import textwrap
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import httpx
import pytest

from tests.support.processes import free_port, tracker_serve

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
# What building needs; what it leaves behind (build/, *.egg-info) stays out of the checkout.
SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "tracker", "templates", "locale"]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "_data")

TIMELINE = """
    id: consultation
    title: Open consultation on the draft
    timezone: Europe/Zurich
    audiences: [membership, secretariat]
    reminders: [7d]
    milestones:
      - id: comments
        title: Comments on the draft
        owner: membership
        due: 2099-03-02
      - id: final
        title: Final text
        owner: secretariat
        due: comments + 2w
"""

OVERVIEW = """{% extends "layout.html.j2" %}
{% block body %}<h1>Our own front page</h1>{% endblock %}
"""
REMINDER = """{% extends "layout.txt.j2" %}
{% block subject %}Soon: {{ item.title }}{% endblock %}
{% block content %}Our own reminder of {{ item.title }}.{% endblock %}
"""


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
                          check=False)  # fmt: skip
    assert done.returncode == 0, f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its bin/ folder."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=IGNORED)
        elif (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", work / "dist", source, cwd=work)  # fmt: skip
    [wheel] = (work / "dist").glob("tracker-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", work / "venv", cwd=work)
    python = work / "venv" / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel,
        cwd=work)  # fmt: skip
    # Only now, so pip never sees the project's own (editable) tracker: the dependencies, and not the
    # checkout, since a directory named in a .pth file has its own .pth files (the editable hook) ignored.
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=work).stdout.strip()
    Path(purelib, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python.parent


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty folder, nowhere near the checkout, with one timeline in schedules/."""
    here = tmp_path / "elsewhere"
    (here / "schedules").mkdir(parents=True)
    (here / "schedules" / "consultation.yaml").write_text(textwrap.dedent(TIMELINE).lstrip(), encoding="utf-8")
    return here


@pytest.fixture
def env() -> dict[str, str]:
    """Every setting at its default: nothing says where the templates or catalogs are."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_") and k != "PYTHONPATH"}


def test_the_wheel_is_what_runs_and_not_the_checkout(venv: Path, folder: Path, env: dict[str, str]) -> None:
    found = run(venv / "python", "-c", "import tracker; print(tracker.__file__)", cwd=folder, env=env).stdout.strip()

    assert Path(found).is_relative_to(venv.parent), found
    assert not Path(found).is_relative_to(REPO), found


def test_every_command_works_from_an_empty_folder(venv: Path, folder: Path, env: dict[str, str]) -> None:
    tracker = venv / "tracker"

    assert "all valid" in run(tracker, "validate", cwd=folder, env=env).stdout
    run(tracker, "sync", cwd=folder, env=env)
    french = preview(tracker, folder, env, "--lang", "fr")
    run(tracker, "publish", "--out", "site", cwd=folder, env=env)
    port = free_port()
    with tracker_serve(tracker, folder, env, port, folder / "serve.log"):
        base = f"http://127.0.0.1:{port}"
        page = httpx.get(f"{base}/", headers={"Accept-Language": "fr"})
        feed = httpx.get(f"{base}/feeds/all.ics")

    assert "Ouvrez le fichier de calendrier joint" in text_part(french), "the French catalog was not read"
    site = folder / "site"
    assert '<h2 id="timelines">Calendriers</h2>' in (site / "fr" / "index.html").read_text()
    assert '<h2 id="timelines">الجداول الزمنية</h2>' in (site / "ar" / "index.html").read_text()
    assert '<h2 id="timelines">Timelines</h2>' in (site / "index.html").read_text()
    assert "Comments on the draft" in (site / "timelines" / "consultation.html").read_text()
    assert (site / "feeds" / "all.ics").read_bytes().startswith(b"BEGIN:VCALENDAR")
    assert page.status_code == 200 and '<h2 id="timelines">Calendriers</h2>' in page.text
    assert feed.status_code == 200 and "Comments on the draft" in feed.text


def test_an_override_wins_and_every_other_template_is_the_shipped_one(
    venv: Path, folder: Path, env: dict[str, str], tmp_path: Path
) -> None:
    overrides = tmp_path / "overrides"
    (overrides / "pages").mkdir(parents=True)
    (overrides / "emails").mkdir()
    (overrides / "pages" / "overview.html.j2").write_text(OVERVIEW)
    (overrides / "emails" / "reminder.txt.j2").write_text(REMINDER)
    env = {**env, "TRACKER_TEMPLATES": str(overrides)}
    run(venv / "tracker", "sync", cwd=folder, env=env)

    message = preview(venv / "tracker", folder, env)
    run(venv / "tracker", "publish", "--out", "site", cwd=folder, env=env)

    assert message["Subject"] == "Soon: Comments on the draft"
    assert text_part(message).strip().startswith("Our own reminder of Comments on the draft.")
    html = message.get_body(("html",))
    assert html is not None and "Open the attached calendar file" in html.get_content()  # the shipped one
    index = (folder / "site" / "index.html").read_text()
    assert "<h1>Our own front page</h1>" in index and 'lang="en"' in index  # the shipped layout around it
    assert "Comments on the draft" in (folder / "site" / "timelines" / "consultation.html").read_text()


def preview(tracker: Path, folder: Path, env: dict[str, str], *args: str) -> EmailMessage:
    done = subprocess.run([str(tracker), "preview", "reminder", "--milestone", "consultation/comments", *args],
                          cwd=folder, env=env, capture_output=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return email.message_from_bytes(done.stdout, policy=email.policy.default)


def text_part(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return cast(str, body.get_content())
