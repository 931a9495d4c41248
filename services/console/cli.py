"""`funnelstream users …`: create the first admin (or anyone) from the command line."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import typer

users_app = typer.Typer(help="People who use the console and the API with their own tokens.", no_args_is_help=True)


@users_app.command("create")
def create(
    email: Annotated[str, typer.Option(help="The user's email (sign-in name).")],
    role: Annotated[str, typer.Option(help="admin, marketer, sales or viewer.")] = "admin",
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (scripts).")
    ] = False,
) -> None:
    """Create a user with a password (asked for twice unless --password-stdin). Needs
    FUNNELSTREAM_DATABASE_URL; run `funnelstream migrate` first."""
    from services.console import accounts
    from services.console.service import ROLES, check_password
    from shared.db import make_engine, make_sessionmaker

    if role not in ROLES:
        typer.echo(f"funnelstream: --role must be one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    database_url = os.environ.get("FUNNELSTREAM_DATABASE_URL")
    if not database_url:
        typer.echo("funnelstream: invalid settings: FUNNELSTREAM_DATABASE_URL: is not set", err=True)
        raise typer.Exit(2)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if why := check_password(password):
        typer.echo(f"funnelstream: {why}", err=True)
        raise typer.Exit(2)

    async def run() -> str:
        engine = make_engine(database_url)
        try:
            user = await accounts.create_user(make_sessionmaker(engine), email, role, password, name)
        finally:
            await engine.dispose()
        return f"created {user.role} {user.email} ({user.id})"

    try:
        typer.echo(asyncio.run(run()))
    except accounts.AccountError as exc:
        typer.echo(f"funnelstream: {exc}", err=True)
        raise typer.Exit(1) from None
