"""`tracker publish`: the public pages as static files, in every language, beside the feeds.

The files are what the server answers, but for their links: pages point at each other as
files (`timelines/hlpf-2017.html`, `ar/index.html`), feeds at the published `.ics` files, and
what needs the server (subscribing) at TRACKER_BASE_URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tracker.atomic import write_atomically
from tracker.text import CONTROLS, LANGUAGES
from tracker.timelines.screening import screen_views
from tracker.timelines.states import LATE_DAYS, Process
from tracker.timelines.views import MilestoneView
from tracker.web.layout import PageLanguage, Static, languages
from tracker.web.pages import render_overview, render_timeline

MANIFEST = ".tracker-publish"  # what the last publish wrote, one file a line
MAX_MANIFEST = 8 * 1024 * 1024  # bytes read of it: about 200,000 files, far more than any site has
PUBLIC_FILE, PUBLIC_FOLDER = 0o644, 0o755  # a web server running as another user reads the site


@dataclass(frozen=True)
class StaticPage:
    path: str  # the server's path of the page
    code: str
    file: str  # from the site's root


def static_pages(views: list[MilestoneView]) -> Iterator[StaticPage]:
    """Every public page in every language: the overview, then one per timeline."""
    timelines = sorted({v.timeline_id for v in views if v.status != "removed"})
    for code in LANGUAGES:
        for path in ["/", *(f"/timelines/{t}" for t in timelines)]:
            file = Static("", 0).file(path, code)
            assert file is not None  # every path above has its file
            yield StaticPage(path, code, file)


def render_static(page: StaticPage, views: list[MilestoneView], base_url: str, process: Process) -> str:
    chosen = PageLanguage(
        languages()[page.code], explicit=page.code != "en", static=Static(base_url, page.file.count("/"))
    )
    where: tuple[str, dict[str, str]] = (page.path, {})
    if page.path == "/":
        return render_overview(views, base_url=base_url, now=process.now, chosen=chosen, where=where, zone=None,
                               late_days=process.late_days)  # fmt: skip
    timeline_id = page.path.removeprefix("/timelines/")
    mine = [v for v in views if v.timeline_id == timeline_id and v.status != "removed"]
    return render_timeline(mine, base_url=base_url, now=process.now, chosen=chosen, where=where, process=process)


def write_pages(
    views: list[MilestoneView],
    site: Site,
    *,
    base_url: str,
    now: datetime,
    advance: Callable[[], None],
    late_days: int = LATE_DAYS,
) -> int:
    """Write every page into *site*; return how many. *advance* is called after each one."""
    count = 0
    process = Process(screen_views(views), now=now, late_days=late_days)
    for page in static_pages(views):
        site.write(page.file, render_static(page, views, base_url, process).encode())
        count += 1
        advance()
    return count


class SiteError(Exception):
    """The site's folder holds something publish must not write through (a symlink, a file for a folder)."""


class Site:
    """The folder `tracker publish` fills: every file replaced, never written through; what it wrote listed.

    The list (MANIFEST) lets the next publish remove what it no longer writes, a removed
    timeline's feed and pages above all, so a static host answers 404 for them as the server
    does; files Tracker did not write are never touched.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.previous = read_manifest(root)
        self.written: list[str] = []
        self._folders: set[Path] = set()

    def expect(self, files: Iterable[str]) -> None:
        """List what is about to be written beside what was: a run cut short leaves nothing unlisted."""
        write_manifest(self.root, list(dict.fromkeys([*self.previous, *files])))

    def write(self, file: str, data: bytes) -> None:
        """Write *data* as *file* (relative to the site's root)."""
        target = self.root / file
        self._check_folders(target.parent)
        write_atomically(target, data, mode=PUBLIC_FILE, folder_mode=PUBLIC_FOLDER)
        self.written.append(file)

    def finish(self) -> list[str]:
        """Remove what the last publish wrote and this one did not; list what is there now. Return the removed."""
        kept = set(self.written)
        removed = [file for file in self.previous if file not in kept and self._remove(file)]
        write_manifest(self.root, self.written)
        return removed

    def _check_folders(self, folder: Path) -> None:
        """Make the folders from the root down to *folder*, refusing a symlink or a file on the way."""
        for path in folders_down(self.root, folder):
            if path in self._folders:
                continue
            if path.is_symlink():
                raise SiteError(f"{path} is a symbolic link; publish writes only into real folders: remove it")
            path.mkdir(mode=PUBLIC_FOLDER, exist_ok=True)
            if not path.is_dir():
                raise SiteError(f"{path} is not a folder; publish needs it for its files: move it away")
            self._folders.add(path)

    def _remove(self, file: str) -> bool:
        target = self.root / file
        # Behind a symlinked folder, or moved away: not the file publish wrote, so it stays.
        if any(path.is_symlink() or not path.is_dir() for path in folders_down(self.root, target.parent)):
            return False
        if not (target.is_symlink() or target.is_file()):
            return False
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        return True


def folders_down(root: Path, folder: Path) -> list[Path]:
    """The folders from *root* (left out) down to *folder*, a folder under it: root/a, root/a/b, …"""
    relative = folder.relative_to(root)
    return [root / step for step in [*reversed(relative.parents), relative][1:]]


def listed_file(line: str) -> str | None:
    """The file a manifest line names, if it is one publish can have written: under the root, a page or a feed."""
    parts = line.split("/")
    if not line.endswith((".html", ".ics")) or CONTROLS.search(line) or "\\" in line:
        return None
    if any(part in ("", ".", "..") for part in parts):  # also refuses an absolute path (its first part is "")
        return None
    return line


def read_manifest(root: Path) -> list[str]:
    """What the last publish wrote, as listed in MANIFEST; nothing if it is missing, not a file, or garbled."""
    path = root / MANIFEST
    if path.is_symlink() or not path.is_file():
        return []  # a device or a link could make the read endless or read another file
    with path.open("rb") as handle:
        data = handle.read(MAX_MANIFEST + 1)
    lines = data[:MAX_MANIFEST].decode("utf-8", errors="replace").split("\n")
    if len(data) > MAX_MANIFEST:
        lines.pop()  # cut short: its last line may be the start of another name
    found = (listed_file(line) for line in lines if not line.startswith("#"))
    return list(dict.fromkeys(file for file in found if file))


def write_manifest(root: Path, files: list[str]) -> None:
    header = "# Files `tracker publish` wrote here; the next publish removes those it no longer writes.\n"
    write_atomically(root / MANIFEST, (header + "".join(f"{file}\n" for file in files)).encode())
