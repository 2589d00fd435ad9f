"""Network namespaces as test hosts, so the nemesis can cut links between nodes.

Processes on one loopback cannot be partitioned, so for partition tests each
node runs in its own network namespace with its own address on a private
bridge (in a hub namespace); the machine running the workload reaches the
bridge through one more veth pair. A partition is iptables DROP rules inside
the nodes' namespaces. Everything is created under a random tag and removed
by `teardown`, and only ever addresses inside these namespaces are used.
Needs root, iproute2 and iptables.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterable, Sequence


class NetnsError(RuntimeError):
    pass


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise NetnsError(f"{' '.join(args)}: {result.stderr.strip()}")


def available() -> str | None:
    """None if namespaces can be used here, else the reason why not."""
    if os.geteuid() != 0:
        return "network partitions need root (network namespaces and iptables)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"network partitions need '{tool}' (iproute2 / iptables)"
    return None


class Topology:
    def __init__(self, size: int, tag: str | None = None) -> None:
        self.size = size
        self.tag = tag or f"{random.randrange(16**4):04x}"
        self.subnet = random.randrange(1, 250)
        self.hub = f"kvh{self.tag}"
        self.namespaces = [f"kvn{self.tag}{i}" for i in range(size)]
        self.addresses = [f"10.199.{self.subnet}.{i + 1}" for i in range(size)]
        self.root_address = f"10.199.{self.subnet}.254"
        self._root_veth = f"kvr{self.tag}"
        self._created = False

    def prefix(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[index]]

    def setup(self) -> None:
        reason = available()
        if reason:
            raise NetnsError(reason)
        self._created = True
        _run("ip", "netns", "add", self.hub)
        _run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i, ns in enumerate(self.namespaces):
            _run("ip", "netns", "add", ns)
            inner, outer = f"kvi{self.tag}{i}", f"kvo{self.tag}{i}"
            _run(
                "ip",
                "link",
                "add",
                inner,
                "netns",
                ns,
                "type",
                "veth",
                "peer",
                outer,
                "netns",
                self.hub,
            )
            _run("ip", "-n", self.hub, "link", "set", outer, "master", "br0", "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.addresses[i]}/24", "dev", inner)
            _run("ip", "-n", ns, "link", "set", inner, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        hub_side = f"kvq{self.tag}"
        _run(
            "ip",
            "link",
            "add",
            self._root_veth,
            "type",
            "veth",
            "peer",
            hub_side,
            "netns",
            self.hub,
        )
        _run("ip", "-n", self.hub, "link", "set", hub_side, "master", "br0", "up")
        _run("ip", "addr", "add", f"{self.root_address}/24", "dev", self._root_veth)
        _run("ip", "link", "set", self._root_veth, "up")

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Cut every link between nodes of different groups."""
        group_of = {node: g for g, members in enumerate(groups) for node in members}
        self.cut(
            (a, b)
            for a in range(self.size)
            for b in range(a + 1, self.size)
            if group_of.get(a) != group_of.get(b)
        )

    def cut(self, links: Iterable[tuple[int, int]]) -> None:
        """Drop all traffic between each pair of nodes (both directions); heals first."""
        self.heal()
        for a, b in links:
            for here, there in ((a, b), (b, a)):
                ns, peer = self.namespaces[here], self.addresses[there]
                _run("ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-s", peer, "-j", "DROP")
                _run(
                    "ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-d", peer, "-j", "DROP"
                )

    def heal(self) -> None:
        for ns in self.namespaces:
            _run("ip", "netns", "exec", ns, "iptables", "-F")

    def teardown(self) -> None:
        if not self._created:
            return
        subprocess.run(["ip", "link", "del", self._root_veth], capture_output=True)
        for ns in [*self.namespaces, self.hub]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._created = False
