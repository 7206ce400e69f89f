# -*- test-case-name: tests.test_kubernetes_stanza -*-
"""
The IP addresses this host answers on: a server block's bind addresses, or
when it binds to all, every interface's (loopback only when there is
nothing else), as CoreDNS finds its own addresses for C{ns.dns} answers.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

SIOCGIFADDR = 0x8915


def interface_addresses() -> list[str]:
    """Every IPv4 and IPv6 address of this host's interfaces (Linux)."""
    addresses = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            try:
                request = struct.pack("256s", name.encode()[:15])
                addresses.append(socket.inet_ntoa(fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)[20:24]))
            except OSError:
                continue
    try:
        with open("/proc/net/if_inet6") as table:
            for line in table:
                hex_address = line.split()[0]
                addresses.append(str(ipaddress.ip_address(bytes.fromhex(hex_address))))
    except OSError:
        pass
    return addresses


def local_ips(bind_hosts: list[str]) -> tuple[str, ...]:
    """The addresses a server block answers on, loopback and link-local left out unless nothing else is."""
    specific = [host for host in bind_hosts if not ipaddress.ip_address(host).is_unspecified]
    if specific and len(specific) == len(bind_hosts):
        return tuple(specific)
    found = interface_addresses()
    usable = [ip for ip in found if not (ipaddress.ip_address(ip).is_loopback or ipaddress.ip_address(ip).is_link_local)]
    return tuple(dict.fromkeys(specific + (usable or found)))
