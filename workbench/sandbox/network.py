"""Network namespace set-up: `none` (a downed lo), `loopback` (lo up), `veth` (a pair with an
address on each side: the host is reachable, nothing else; forwarding is never enabled).

The host side runs in the launcher (host network namespace), the sandbox side in the sandbox's
pid 1 (which holds CAP_NET_ADMIN over its own network namespace only).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
VETH_NET = ipaddress.ip_network("10.213.0.0/16")  # carved into /30s: .1 host side, .2 sandbox
SANDBOX_IF = "eth0"


def link_up(name: str = "lo") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))


def veth_addresses(index: int) -> tuple[str, str]:
    """Host and sandbox address (/30) for the index-th veth pair."""
    base = int(VETH_NET.network_address) + 4 * (index % (VETH_NET.num_addresses // 4))
    return str(ipaddress.ip_address(base + 1)), str(ipaddress.ip_address(base + 2))


def host_veth_name(owner: int, index: int) -> str:
    return f"wb{owner}x{index}"[:15]


def create_veth(host_if: str, sandbox_pid: int, host_addr: str) -> None:
    """Create the pair in the host namespace and move the peer into the sandbox's."""
    from pyroute2 import IPRoute  # imported lazily: only veth sandboxes pay for it

    with IPRoute() as ipr:
        fd = os.open(f"/proc/{sandbox_pid}/ns/net", os.O_RDONLY)
        try:
            ipr.link("add", ifname=host_if, kind="veth", peer={"ifname": SANDBOX_IF, "net_ns_fd": fd})
        finally:
            os.close(fd)
        idx = ipr.link_lookup(ifname=host_if)[0]
        ipr.addr("add", index=idx, address=host_addr, prefixlen=30)
        ipr.link("set", index=idx, state="up")


def configure_sandbox_side(sandbox_addr: str, host_addr: str) -> None:
    from pyroute2 import IPRoute

    link_up("lo")
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=SANDBOX_IF)[0]
        ipr.addr("add", index=idx, address=sandbox_addr, prefixlen=30)
        ipr.link("set", index=idx, state="up")
        ipr.route("add", dst="default", gateway=host_addr)


def delete_link(name: str) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            ipr.link("del", index=found[0])


def stale_links(alive) -> list[str]:
    """Host veths of ours whose owner process is gone (`alive(pid)` says)."""
    out = []
    for name in os.listdir("/sys/class/net"):
        if name.startswith("wb") and "x" in name:
            owner = name[2:].split("x", 1)[0]
            if owner.isdigit() and not alive(int(owner)):
                out.append(name)
    return out
