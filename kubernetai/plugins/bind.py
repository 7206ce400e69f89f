# -*- test-case-name: tests.test_server -*-
"""
bind: the addresses a server block listens on (CoreDNS's bind plugin).

C{bind ADDRESS...} with IP addresses; C{except ADDRESS...} inside a block is
not supported.  Without bind a block listens on every address.
"""

from __future__ import annotations

import ipaddress

from kubernetai import options
from kubernetai.chain import ServerConfig
from kubernetai.corefile import Directive


def setup(directives: list[Directive], config: ServerConfig) -> None:
    """Add each directive's addresses to the block's listen addresses."""
    for directive in directives:
        options.no_block(directive)
        for address in options.arg_count(directive, 1, None):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise options.error(
                    directive, f"invalid address {address!r}: expected an IPv4 or IPv6 address"
                ) from None
            if address not in config.bind_hosts:
                config.bind_hosts.append(address)
    config.plan.append("bind " + " ".join(config.bind_hosts))
    return None
