"""`kvnode token create|list|revoke`: access tokens with a role and key prefixes (see
kvnode/http/auth.py for what each role may do). They need an admin token (`--token`)."""

from __future__ import annotations

import click

from kvnode.access import ROLES
from kvnode.cli.common import ClientOptions, client_command, echo_json, main


@main.group()
def token() -> None:
    """Access tokens for nodes that set auth_token: each with a role (read, readwrite,
    admin, metrics) and, optionally, the key prefixes it is limited to.

    \b
    Examples:
      kvnode token create --role read --prefix app/ --token "$ROOT_TOKEN"
      kvnode token list --token "$ROOT_TOKEN"
      kvnode token revoke tok-1a2b3c4d --token "$ROOT_TOKEN"
    """


@token.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--prefix", "prefixes", multiple=True, help="Limit it to keys under this (repeat).")
@click.option("--id", "token_id", help="Its name (default: tok-<8 hex digits>).")
@client_command
def token_create(
    role: str, prefixes: tuple[str, ...], token_id: str | None, client: ClientOptions
) -> None:
    """Create a token and print its secret: the only time anyone sees it (the nodes keep
    its hash)."""
    made = client.run(lambda c: c.token_create(role, prefixes=prefixes, token_id=token_id))
    if client.as_json:
        echo_json(made)
        return
    scope = ", ".join(made["prefixes"]) or "every key"
    click.echo(made["token"])
    click.echo(f"created token {made['id']}: {made['role']} on {scope}", err=True)


@token.command("list")
@client_command
def token_list(client: ClientOptions) -> None:
    """The tokens: id, role and prefixes (never a secret)."""
    tokens = client.run(lambda c: c.tokens())
    if client.as_json:
        echo_json(tokens)
        return
    click.echo(f"{'ID':24} {'ROLE':10} PREFIXES")
    for row in tokens:
        click.echo(f"{row['id']:24} {row['role']:10} {', '.join(row['prefixes']) or '(all)'}")


@token.command("revoke")
@click.argument("token_id")
@client_command
def token_revoke(token_id: str, client: ClientOptions) -> None:
    """Revoke token TOKEN_ID: requests with it get 401 from then on."""
    client.run(lambda c: c.token_revoke(token_id))
    click.echo(f"revoked token {token_id}")
