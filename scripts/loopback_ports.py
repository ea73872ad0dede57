"""Loopback TCP ports for processes the scripts and tests start.

A port that bind(0) picked lies in the kernel's ephemeral range, so until the
process it is meant for listens on it, any outgoing connection may take it
(in CI an earlier node's connection to its seed took a later node's cluster
port). These ports lie below that range, where only listeners go."""

import random
import socket

HOST = "127.0.0.1"
FIRST = 20000  # lowest port handed out


def ephemeral_range():
    """The kernel's range for ports it picks itself (bind(0), connect)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = map(int, f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(n):
    """`n` different ports, each free a moment ago. All are held until all are
    picked, so they differ."""
    candidates = range(FIRST, ephemeral_range()[0])
    socks = []
    try:
        for port in random.sample(candidates, min(500, len(candidates))):
            s = socket.socket()
            try:
                s.bind((HOST, port))
            except OSError:
                s.close()
                continue
            socks.append(s)
            if len(socks) == n:
                return [s.getsockname()[1] for s in socks]
        raise RuntimeError(f"no {n} free loopback ports in {candidates}")
    finally:
        for s in socks:
            s.close()


def free_port():
    """One port that was free a moment ago."""
    return free_ports(1)[0]
