"""Feed and server commands: feed, publish, serve, run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tracker.cli.common import app, calendars, err, fail, out, secret_key, settings, store
from tracker.cli.console import styled

HostOption = Annotated[str | None, typer.Option(help="Address to listen on (default: TRACKER_HOST)")]
PortOption = Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: TRACKER_PORT)")]


@app.command()
def feed(
    timeline: Annotated[str | None, typer.Option(help="Only this timeline")] = None,
    audience: Annotated[str | None, typer.Option(help="Only what concerns this audience")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE (default: stdout)")] = None,
) -> None:
    """Write one calendar feed (.ics): all timelines, one timeline, or one audience."""
    from tracker.feeds.calendars import FeedRef

    if timeline and audience:
        fail("give --timeline or --audience, not both")
    ref = (
        FeedRef("timeline", timeline)
        if timeline
        else FeedRef("audience", audience)
        if audience
        else FeedRef("all", None)
    )
    feeds = calendars(store())
    body = feeds.feed(ref)
    if body is None:
        fail(f"no such feed {ref.path}; the feeds are: {', '.join(r.path for r in feeds.refs())}")
    if output is None:
        sys.stdout.buffer.write(body.body)
        return
    try:
        output.write_bytes(body.body)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}", 1)
    err.print(f"wrote {output} ({len(body.body):,} bytes)")


@app.command()
def publish(out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the static site into")]) -> None:
    """Write every public feed, byte for byte what `tracker serve` sends, and the public pages in six languages."""
    from rich.progress import Progress

    from tracker.store.engine import transaction
    from tracker.timelines.stored import load_views
    from tracker.web.static import Site, SiteError, static_pages, write_pages

    check_site_folder(out_dir)
    engine = store()
    feeds = calendars(engine)
    refs = feeds.refs()
    with transaction(engine) as session:
        views = load_views(session)
    pages = [page.file for page in static_pages(views)]
    try:
        site = Site(out_dir)
        site.expect([*(ref.path.lstrip("/") for ref in refs), *pages])
        with Progress(console=err, transient=True, disable=len(refs) + len(pages) < 20) as progress:
            for ref in progress.track(refs, description="Writing feeds"):
                body = feeds.feed(ref)
                assert body is not None  # refs() lists existing feeds only
                site.write(ref.path.lstrip("/"), body.body)
            task = progress.add_task("Writing pages", total=len(pages))
            written = write_pages(views, site, base_url=settings().base_url, now=feeds.clock(),
                                  advance=lambda: progress.advance(task), late_days=settings().late_days)  # fmt: skip
        removed = site.finish()
    except SiteError as exc:
        fail(str(exc), 1)
    except OSError as exc:
        fail(f"cannot write {exc.filename or out_dir}: {exc.strerror or exc}", 1)
    gone = f"; removed {len(removed)} files it no longer writes" if removed else ""
    out.print(styled(("✓", "green"), f" wrote {len(refs)} feeds and {written} pages to {out_dir}{gone}"))
    out.print(f"  open {out_dir / 'index.html'}; subscribing links go to {settings().base_url}")


def check_site_folder(out_dir: Path) -> None:
    """Refuse an --out that is a symlink or not a folder; make it when missing."""
    if out_dir.is_symlink():
        fail(f"--out: {out_dir} is a symbolic link; give the real folder ({out_dir.resolve()})")
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out: {out_dir} is not a folder; give a folder for the site (it is made if missing)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--out: cannot make {out_dir}: {exc.strerror or exc}", 1)


@app.command()
def serve(host: HostOption = None, port: PortOption = None) -> None:
    """Serve HTTP only, without sending: every page, feed and API route, /healthz and /metrics."""
    import uvicorn

    from tracker.web.app import create_app
    from tracker.web.limits import server_options

    config = settings()
    engine = store()
    app = create_app(engine, calendars(engine), settings=config)
    # Access logs cost more than a cached feed does; a proxy in front usually keeps them.
    uvicorn.run(app, host=host or config.host, port=port or config.port, log_level="info", access_log=False,
                **server_options(config.request_timeout))  # fmt: skip


@app.command()
def run(host: HostOption = None, port: PortOption = None) -> None:
    """The main job: migrate, sync, deliver reminders and notices, watch the schedules folder, serve HTTP."""
    from tracker.runner import run_main_job

    config = settings()
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    config = config.model_copy(update=overrides)
    engine = store()
    run_main_job(engine, config, calendars(engine), secret_key())
