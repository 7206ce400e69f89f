# -*- test-case-name: tests.test_kubernetes_config,tests.test_corefile -*-
"""
Zones as every plugin names and matches them: written lower case and fully
qualified (L{normalize_zone}); the zones a server-block key stands for
(L{parse_key}: C{dns://example.org:1053}, or a CIDR's reverse zones); a name
is in a zone when it is the zone or below it, the root holding every name;
and fallthrough, the small shared type CoreDNS's plugins use to say which
misses go on to the next plugin.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class ZoneAddress:
    """A zone a server block serves and the port it serves it on."""

    scheme: str
    zone: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.zone}:{self.port}"


def normalize_zone(text: str) -> str:
    """C{text} as a fully qualified, lower-case zone: C{"Cluster.Local"} -> C{"cluster.local."}."""
    zone = text.lower()
    if zone in ("", "."):
        return "."
    return zone if zone.endswith(".") else zone + "."


def reverse_zones(cidr: str) -> list[str]:
    """The reverse zones covering network C{cidr}, split on label boundaries as CoreDNS does.

    Raises C{ValueError} if C{cidr} is not an ADDRESS/PREFIX network.
    """
    network = ipaddress.ip_network(cidr, strict=False)
    label_bits = 8 if network.version == 4 else 4
    prefix = -(-network.prefixlen // label_bits) * label_bits
    return [_reverse_zone(subnet, label_bits) for subnet in network.subnets(new_prefix=prefix)]


def _reverse_zone(network: ipaddress.IPv4Network | ipaddress.IPv6Network, label_bits: int) -> str:
    if network.version == 4:
        labels = str(network.network_address).split(".")
        suffix = "in-addr.arpa."
    else:
        labels = list(network.network_address.exploded.replace(":", ""))
        suffix = "ip6.arpa."
    kept = labels[: network.prefixlen // label_bits]
    return "".join(label + "." for label in reversed(kept)) + suffix


def parse_key(key: str, default_port: int = 53) -> tuple[ZoneAddress, ...]:
    """The zones a server-block key such as C{dns://example.org:1053} or C{10.0.0.0/22} stands for.

    Raises C{ValueError} saying what is wrong with the key.
    """
    scheme, separator, rest = key.partition("://")
    if separator and scheme.lower() != "dns":
        raise ValueError(f"unsupported scheme {scheme}:// in key {key!r}: only dns:// is supported")
    host, port = _split_port(rest if separator else key, key, default_port)
    if "/" in host and _is_ip_address(host.partition("/")[0]):
        try:
            zones = reverse_zones(host)
        except ValueError:
            raise ValueError(
                f"invalid CIDR {host!r} in key {key!r}: expected ADDRESS/PREFIX such as 10.0.0.0/24"
            ) from None
    else:
        zones = [_checked_zone(host, key)]
    return tuple(ZoneAddress("dns", zone, port) for zone in zones)


def _split_port(text: str, key: str, default_port: int) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or "/" in port:
        # No port; a colon in an IPv6 network (fd00::/64) is not one.
        return text, default_port
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"invalid port {port!r} in key {key!r}: expected a number from 0 to 65535")
    return host, int(port)


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _checked_zone(host: str, key: str) -> str:
    zone = normalize_zone(host)
    labels = zone[:-1].split(".") if zone != "." else []
    if len(zone) > 255 or any(not 0 < len(label) < 64 for label in labels):
        raise ValueError(f"invalid zone {host!r} in key {key!r}: expected a domain name such as example.org")
    return zone


def in_zone(name: str, zone: str) -> bool:
    """Whether C{name} is C{zone} or below it."""
    return zone == "." or name == zone or name.endswith("." + zone)


def in_zones(name: str, zones: Iterable[str]) -> bool:
    """Whether C{name} is in one of C{zones}."""
    return any(in_zone(name, zone) for zone in zones)


def all_or_none(zone: str, zones: Iterable[str]) -> bool:
    """Whether the names of C{zone} are all in C{zones}, or none of them is."""
    return in_zones(zone, zones) or not any(in_zone(own, zone) for own in zones)


def most_specific(name: str, zones: Iterable[str]) -> str | None:
    """The longest of C{zones} that holds C{name}, or None."""
    matches = [zone for zone in zones if in_zone(name, zone)]
    return max(matches, key=len) if matches else None


@dataclass(frozen=True)
class Fallthrough:
    """Which misses may go on to the next stanza or plugin: all, or those in C{zones}."""

    zones: tuple[str, ...] = ()

    def through(self, name: str) -> bool:
        """Whether a query for C{name} may fall through: every name when no zones were given."""
        return not self.zones or in_zones(normalize_zone(name), self.zones)

    def alike(self, zone: str) -> bool:
        """Whether the misses of C{zone}'s names all fall through, or none does."""
        return not self.zones or all_or_none(zone, self.zones)
