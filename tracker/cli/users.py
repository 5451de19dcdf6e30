"""`tracker users …`: who may sign in to the console, and with which role."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tracker.cli.common import app, fail, now_utc, out, print_json, store, who
from tracker.text import LANGUAGES

if TYPE_CHECKING:
    from tracker.store.models import User

ROLES = ("viewer", "secretary", "admin")  # as tracker.accounts.roles.ROLES, without importing it to show help
group = typer.Typer(help="Manage who may sign in to the console.", no_args_is_help=True)
app.add_typer(group, name="users")


@group.command("add")
def add(
    email: Annotated[str, typer.Argument(help="Email address the sign-in links go to")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)} (each may do what the ones before may)")],
    language: Annotated[str, typer.Option(help=f"Of the sign-in email: one of {', '.join(LANGUAGES)}")] = "en",
) -> None:
    """Add a user, or change the role of one (a changed role signs them out everywhere)."""
    from tracker.accounts.roles import parse_role
    from tracker.accounts.users import UserError, save_user
    from tracker.store.audit import account_event
    from tracker.store.engine import transaction

    try:
        chosen = parse_role(role)
    except ValueError as exc:
        fail(f"--role: {exc}")
    with transaction(store(), write=True) as session:
        try:
            user, outcome = save_user(session, email, chosen, language.strip().lower(), now_utc())
        except UserError as exc:
            fail(str(exc))
        if outcome != "unchanged":
            session.add(account_event(f"console_user_{outcome}", user, now_utc(), who(), role=user.role))
    out.print(f"{user.email}: {outcome} ({user.role}); they sign in at /console/ with a link sent by email")


@group.command("list")
def list_users(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """List users and their roles."""
    from rich.table import Table

    from tracker.accounts.users import list_users as read_users
    from tracker.store.engine import transaction

    with transaction(store()) as session:
        rows = list(read_users(session))
    if as_json:
        print_json([user_json(user) for user in rows])
        return
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for column in ("Email", "Role", "Lang", "Added"):
        table.add_column(column, overflow="fold")
    for user in rows:
        table.add_row(user.email, user.role, user.language, f"{user.created_at:%Y-%m-%d %H:%M} UTC")
    out.print(table if rows else "No users. Add one: tracker users add you@example.org --role admin")


def user_json(user: User) -> dict[str, object]:
    return {
        "email": user.email, "role": user.role, "language": user.language,
        "created_at": user.created_at.isoformat(),
    }  # fmt: skip


@group.command("remove")
def remove(email: Annotated[str, typer.Argument(help="Email address")]) -> None:
    """Remove a user: their sessions end and their unused sign-in links stop working at once."""
    from tracker.accounts.users import UserError, find_user, remove_user
    from tracker.store.audit import account_event
    from tracker.store.engine import transaction

    with transaction(store(), write=True) as session:
        try:
            user = find_user(session, email)
        except UserError as exc:
            fail(str(exc))
        if user is None:
            fail(f"no user {email[:320]!r}: see `tracker users list`")
        session.add(account_event("console_user_removed", user, now_utc(), who(), role=user.role))
        remove_user(session, user)
    out.print(f"{user.email}: removed; signed out everywhere")
