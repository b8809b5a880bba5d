"""Test hosts on one machine: a network namespace per host, each joined to one bridge by a veth pair.

The bridge lives in this machine's own namespace with the first address of SUBNET, so the test process (the
clients) reaches every host; hosts take addresses of their own from a /24 no other machine uses. A host's link
can be cut (its veth set down: nothing in or out) and healed. Everything made is removed by close(), and
leftovers of an earlier run that died are removed before a run starts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

SUBNET = "10.231.0"
BRIDGE = "lhbr0"
BRIDGE_ADDRESS = f"{SUBNET}.1"
NAMESPACE_PREFIX = "lh-"
# One set of test hosts per machine at a time (the names and the subnet are fixed): a second run waits here.
LOCK_FILE = os.path.join(tempfile.gettempdir(), "llm-test-hosts.lock")
LINK_PREFIX = "lhv-"


def unavailable_reason() -> str | None:
    """Why test hosts can't run here (not root, no `ip`, no namespaces), or None."""
    if os.geteuid() != 0:
        return "test hosts need root (network namespaces, veth pairs, a bridge)"
    if shutil.which("ip") is None:
        return "test hosts need iproute2's `ip`"
    # One probe per process: every pytest process collects this file, and two probes of one name race.
    probe = f"{NAMESPACE_PREFIX}probe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class Host:
    """One test host: its namespace, the veth end on the bridge, its address."""

    name: str
    address: str

    @property
    def namespace(self) -> str:
        return f"{NAMESPACE_PREFIX}{self.name}"

    @property
    def link(self) -> str:
        return f"{LINK_PREFIX}{self.name}"[:15]

    def prefix(self) -> list[str]:
        """What runs a command on this host."""
        return ["ip", "netns", "exec", self.namespace]


@dataclass
class Network:
    """The bridge and the hosts made on it."""

    hosts: dict[str, Host] = field(default_factory=dict)
    lock: int | None = None

    def __enter__(self) -> Network:
        self.lock = os.open(LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.clean_leftovers()
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_host(self, name: str, number: int) -> Host:
        """A namespace with lo up and eth0 at SUBNET.<number>, joined to the bridge."""
        host = Host(name, f"{SUBNET}.{number}")
        self.hosts[name] = host
        _ip("netns", "add", host.namespace)
        _ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        _ip("link", "set", host.link, "master", BRIDGE)
        _ip("link", "set", host.link, "up")
        for args in (("addr", "add", f"{host.address}/24", "dev", "eth0"), ("link", "set", "eth0", "up"),
                     ("link", "set", "lo", "up")):  # fmt: skip
            _ip("-n", host.namespace, *args)
        return host

    def cut(self, name: str) -> None:
        """Cut the host off: its link goes down, nothing reaches it or leaves it."""
        _ip("link", "set", self.hosts[name].link, "down")

    def heal(self, name: str) -> None:
        """Join the host again."""
        _ip("link", "set", self.hosts[name].link, "up")

    def close(self) -> None:
        """Remove the hosts (their veth pairs go with their namespaces) and the bridge."""
        for host in self.hosts.values():
            # The pair goes now: a deleted namespace's links go only once the kernel has cleaned it up, which may
            # come after the next run wants their names.
            _ip("link", "delete", host.link, check=False)
            _ip("netns", "delete", host.namespace, check=False)
        self.hosts.clear()
        _ip("link", "delete", BRIDGE, check=False)
        if self.lock is not None:
            os.close(self.lock)  # releases the flock
            self.lock = None

    @staticmethod
    def clean_leftovers() -> None:
        """Remove what a run that was killed left behind."""
        listed = _ip("netns", "list", check=False).stdout.split("\n")
        for line in listed:
            name = line.split(" ")[0]
            if name.startswith(NAMESPACE_PREFIX):
                _ip("netns", "delete", name, check=False)
        for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
            link = line.split(":")[1].strip().split("@")[0]
            if link.startswith(LINK_PREFIX):
                _ip("link", "delete", link, check=False)
        _ip("link", "delete", BRIDGE, check=False)
