"""The membership commands of the `kvnode` CLI: `kvnode member list|add|remove` (registered on
`kvnode.cli.common.main` when it is imported)."""

from __future__ import annotations

from typing import Any

import click

from kvnode.cli.common import ClientOptions, client_command, echo_json, main


@main.group()
def member() -> None:
    """The cluster's voting members: list them, add one, remove one.

    \b
    Growing a cluster by one node:
      kvnode member add 10.0.0.4:4321 http://10.0.0.4:8001 --id node4
      kvnode serve --config node4.toml          # its config: no peers
    or, in one step on the new machine:
      kvnode serve --config node4.toml --join http://10.0.0.1:8001
    """


def echo_members(members: list[dict[str, Any]]) -> None:
    click.echo(f"{'ID':12} {'RAFT ADDR':22} {'HTTP URL':28} {'LEADER':6} {'REACHABLE':9} APPLIED")
    for row in members:
        applied = "-" if row["applied_index"] is None else row["applied_index"]
        click.echo(
            f"{row['id']:12} {row['raft_addr']:22} {row['http_url'] or '-':28}"
            f" {'yes' if row['is_leader'] else '':6} {'yes' if row['reachable'] else 'NO':9}"
            f" {applied}"
        )


@member.command("list")
@client_command
def member_list(client: ClientOptions) -> None:
    """Every voting member, as the first node that answers sees it.

    APPLIED is the node's applied index for the answering node, and the index the
    leader knows each follower holds when the leader answers ("-" elsewhere)."""
    members = client.run(lambda c: c.members())
    if client.as_json:
        echo_json(members)
    else:
        echo_members(members)


@member.command("add")
@click.argument("raft_addr")
@click.argument("http_url")
@click.option("--id", "node_id", default="", help="The new member's node_id.")
@client_command
def member_add(raft_addr: str, http_url: str, node_id: str, client: ClientOptions) -> None:
    """Add the node at RAFT_ADDR (its HTTP API at HTTP_URL) as a voter, then start it
    with an empty data directory and no peers (or start it with --join instead).

    Refused while another change is not committed yet, and when the cluster could not
    commit with the new member before it starts (a majority must stay reachable)."""
    reply = client.run(lambda c: c.member_add(raft_addr, http_url, node_id))
    if client.as_json:
        echo_json(reply)
    else:
        click.echo(f"added {reply['member']['id']} ({raft_addr}); members now:")
        echo_members(reply["members"])


@member.command("remove")
@click.argument("member_id", metavar="ID")
@client_command
def member_remove(member_id: str, client: ClientOptions) -> None:
    """Remove the member ID (its id or raft_addr) from the voters; stop it afterwards.

    Refused when the remaining members could not commit (a majority of them must be
    reachable). Removing the leader first hands leadership to another member."""
    reply = client.run(lambda c: c.member_remove(member_id))
    if client.as_json:
        echo_json(reply)
    else:
        click.echo(f"removed {reply['removed']['id']}; members now:")
        echo_members(reply["members"])
