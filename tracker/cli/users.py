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
        remove_user(session, user, now_utc())
    out.print(f"{user.email}: removed; signed out everywhere, their API tokens revoked")


tokens = typer.Typer(help="Personal API tokens for /api writes (each belongs to a user).", no_args_is_help=True)
group.add_typer(tokens, name="token")


@tokens.command("add")
def token_add(
    email: Annotated[str, typer.Argument(help="The user the token belongs to")],
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'website-sync' (shown in the audit log)")],
    role: Annotated[str | None, typer.Option(help="At most the user's role (the default)")] = None,
    days: Annotated[int | None, typer.Option(help="Expires after this many days; default: never")] = None,
) -> None:
    """Create a token and print it once: only its hash is stored, so it cannot be shown again."""
    from tracker.accounts.api_tokens import TokenError, create_token, token_event
    from tracker.accounts.roles import parse_role
    from tracker.accounts.users import UserError, find_user
    from tracker.store.engine import transaction

    try:
        chosen = parse_role(role) if role is not None else None
    except ValueError as exc:
        fail(f"--role: {exc}")
    with transaction(store(), write=True) as session:
        try:
            user = find_user(session, email)
            if user is None:
                fail(f"no user {email[:320]!r}: add one first with `tracker users add EMAIL --role secretary`")
            row, token = create_token(session, user, name, chosen, days, now_utc())
        except (UserError, TokenError) as exc:
            fail(str(exc))
        session.add(token_event("api_token_created", row, user.email, who(), now_utc()))
    expiry = f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "does not expire"
    out.print(
        f"Token {row.id} {row.name!r} of {user.email} ({row.role}, {expiry}); copy it now, it is not shown again:"
    )
    print(token)


@tokens.command("list")
def token_list(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """List tokens (never the tokens themselves): owner, role, created, last used, expires, revoked."""
    from rich.table import Table

    from tracker.accounts.api_tokens import list_tokens
    from tracker.store.engine import transaction

    with transaction(store()) as session:
        rows = [token_json(found.token, found.owner) for found in list_tokens(session)]
    if as_json:
        print_json(rows)
        return
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    columns = ("id", "name", "owner", "role", "created_at", "last_used_at", "expires_at", "revoked_at")
    for column in ("Id", "Name", "Owner", "Role", "Created", "Last used", "Expires", "Revoked"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(shown(row[column]) for column in columns))
    out.print(table if rows else "No tokens. Create one: tracker users token add EMAIL --name NAME")


def token_json(token: object, owner: str) -> dict[str, object]:
    from tracker.store.models import ApiToken

    assert isinstance(token, ApiToken)
    stamp = {name: (value.isoformat() if value else None) for name, value in (
        ("created_at", token.created_at), ("last_used_at", token.last_used_at), ("expires_at", token.expires_at),
        ("revoked_at", token.revoked_at))}  # fmt: skip
    return {"id": token.id, "name": token.name, "owner": owner or None, "role": token.role, **stamp}


def shown(value: object) -> str:
    """A cell: a time as 'YYYY-MM-DD HH:MM UTC', nothing as '—'."""
    if value is None:
        return "—"
    text = str(value)
    return f"{text[:16].replace('T', ' ')} UTC" if text[:4].isdigit() and "T" in text else text


@tokens.command("revoke")
def token_revoke(
    ref: Annotated[str, typer.Argument(help="The token's id or name (see `tracker users token list`)")],
) -> None:
    """Revoke a token: the next request that uses it is refused."""
    from tracker.accounts.api_tokens import find_token, owner_of, revoke_token, token_event
    from tracker.store.engine import transaction

    with transaction(store(), write=True) as session:
        row = find_token(session, ref)
        if row is None:
            fail(f"no token {ref[:60]!r}: see `tracker users token list` (a revoked token is named by its id)")
        if not revoke_token(session, row, now_utc()):
            fail(f"token {row.id} {row.name!r} was revoked already", 1)
        session.add(token_event("api_token_revoked", row, owner_of(session, row), who(), now_utc()))
    out.print(f"Token {row.id} {row.name!r}: revoked")
