# -*- test-case-name: tests.test_kubernetes_config -*-
"""
Zones as every plugin matches them: a name is in a zone when it is the zone
or below it, the root holding every name (names and zones lower case, fully
qualified); and fallthrough, the small shared type CoreDNS's plugins use to
say which misses go on to the next plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from kubernetai.corefile import normalize_zone


def in_zone(name: str, zone: str) -> bool:
    """Whether C{name} is C{zone} or below it."""
    return zone == "." or name == zone or name.endswith("." + zone)


def in_zones(name: str, zones: Iterable[str]) -> bool:
    """Whether C{name} is in one of C{zones}."""
    return any(in_zone(name, zone) for zone in zones)


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
