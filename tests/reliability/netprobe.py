"""Which TCP addresses a process tree listens on, read from /proc (Linux): no tools, no mocks."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (children found through /proc/<p>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return sorted(set(out))


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for p in pids:
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{p}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _decode(hex_addr: str) -> str:
    ip_hex, port_hex = hex_addr.split(":")
    raw = bytes.fromhex(ip_hex)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(ip_hex, 16)))
    else:  # /proc/net/tcp6: four little-endian 32-bit words
        ip = socket.inet_ntop(socket.AF_INET6, b"".join(struct.pack("<I", int(ip_hex[i:i + 8], 16)) for i in range(0, 32, 8)))
    return f"{ip}:{int(port_hex, 16)}"


def listening(pids: list[int]) -> list[str]:
    """``ip:port`` of every listening TCP socket held by ``pids`` (IPv4 and IPv6)."""
    inodes = _socket_inodes(pids)
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # state 0A = LISTEN
                out.append(_decode(f[1]))
    return sorted(set(out))


def is_loopback(addr: str) -> bool:
    ip = addr.rsplit(":", 1)[0]
    return ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1")
