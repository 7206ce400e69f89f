# -*- test-case-name: tests.test_autopath,tests.test_forward -*-
"""
resolv.conf(5) read as miekg/dns's ClientConfigFromFile reads it for
CoreDNS: the C{nameserver} lines in order, and the search list, which the
last C{search} or C{domain} line sets (C{domain} to that one domain).
"""

from __future__ import annotations

import errno
import os
from typing import NamedTuple


class ResolvConf(NamedTuple):
    """What a resolv.conf says, as written: names are not normalized."""

    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()


def parse(text: str) -> ResolvConf:
    """The nameservers and search list of a resolv.conf's C{text}."""
    nameservers: list[str] = []
    search: tuple[str, ...] = ()
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            nameservers.append(words[1])
        elif words[0] == "search":
            search = tuple(words[1:])
        elif words[0] == "domain":
            search = tuple(words[1:2])
    return ResolvConf(tuple(nameservers), search)


def read(path: str) -> ResolvConf:
    """The resolv.conf at C{path}; raises C{OSError} when it cannot be read."""
    try:
        resolv_conf = open(path, encoding="utf-8", errors="replace")
    except ValueError:  # a NUL in the path, which Go's open calls an invalid argument
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path) from None
    with resolv_conf:
        return parse(resolv_conf.read())
