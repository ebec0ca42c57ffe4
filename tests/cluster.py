"""A real three-node CouchDB cluster on this machine, from one release, for the cluster tests.

Each node is a ``servers.CouchServer`` with a port, an Erlang node name and a data directory
of its own; the three share the Erlang cookie, the server admin and the ``[chttpd_auth]``
secret, and keep three copies of every shard (``[cluster] n = 3``). ``start()`` launches the
three at once, then joins them as CouchDB's own cluster setup does (``_nodes``, then
``_cluster_setup`` ``finish_cluster``). Nodes are killed and started by their PIDs only.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from pathlib import Path

from .servers import CouchServer


class ClusterNode(CouchServer):
    """One node of a cluster: not a single node, and with the cluster's shared secrets."""

    def __init__(self, release: Path, *, name: str, password: str, cookie: str, secret: str):
        self.cookie, self.secret = cookie, secret
        super().__init__(release, password=password, name=name)

    def _ini(self, data: Path) -> str:
        return (
            super()
            ._ini(data)
            .replace("single_node = true", "single_node = false")
            .replace("[replicator]\n", f"[chttpd_auth]\nsecret = {self.secret}\n[replicator]\n")
            + "[cluster]\nn = 3\nq = 2\n"
        )

    def _more_vm_args(self) -> list[str]:
        return [f"-setcookie {self.cookie}"]

    def call(self, method: str, path: str, body: object = None) -> object:
        """An admin request to this node; its decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        headers = {**self.admin_headers, "Content-Type": "application/json"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers, method=method
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())


class CouchCluster:
    """Three CouchDB nodes joined into one cluster."""

    size = 3

    def __init__(self, release: Path) -> None:
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        password, cookie, secret = (secrets.token_hex(8) for _ in range(3))
        self.nodes = [
            ClusterNode(
                release,
                name=f"settee-n{index}-{tag}@127.0.0.1",
                password=password,
                cookie=cookie,
                secret=secret,
            )
            for index in range(1, self.size + 1)
        ]

    @property
    def urls(self) -> list[str]:
        """Each node's URL, with the server admin's credentials."""
        return [node.url for node in self.nodes]

    @property
    def plain_urls(self) -> list[str]:
        """Each node's URL, without credentials."""
        return [f"http://127.0.0.1:{node.port}" for node in self.nodes]

    def start(self) -> CouchCluster:
        for node in self.nodes:
            node.launch()
        try:
            for node in self.nodes:
                node.wait_started(system_databases=False)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                first.call("PUT", f"/_node/_local/_nodes/{node.name}", {})
            first.call("POST", "/_cluster_setup", {"action": "finish_cluster"})
            self._wait_joined()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_joined(self, timeout: float = 30.0) -> None:
        """Until every node lists all three and reads the rules of _users (made by the setup)."""
        deadline = time.monotonic() + timeout
        names = sorted(node.name for node in self.nodes)
        for node in self.nodes:
            while True:
                try:
                    membership = node.call("GET", "/_membership")
                    node.call("GET", "/_users/_design/_auth")
                except OSError:
                    membership = {}
                if sorted(membership.get("cluster_nodes", [])) == names:  # type: ignore[union-attr]
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not form: {membership}")
                time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
