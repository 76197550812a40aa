"""Cluster DNS, emulated: the host names a cluster would resolve, mapped to this machine.

In a cluster, the pods of a multi-node run find each other by name
(``<job>-0.<service>``, from the headless Service). Locally every pod is a set
of processes on this machine, so an argument or environment value that *is*
such a host name (or ``host:port``) is rewritten to the address it stands for
— the same way mount paths are rewritten. This is the one piece of networking
the pod runner emulates: the processes then really connect over TCP.
"""

from __future__ import annotations

from collections.abc import Mapping


def resolve(value: str, hosts: Mapping[str, str]) -> str:
    """``value`` with a known host name (alone, or as ``host:port``) replaced by its address."""
    if not hosts:
        return value
    if value in hosts:
        return hosts[value]
    host, sep, port = value.rpartition(":")
    if sep and host in hosts and port.isdigit():
        return f"{hosts[host]}:{port}"
    return value
