# -*- test-case-name: tests.test_forward,tests.test_flood -*-
"""
forward: sends queries for FROM to upstream resolvers and relays their
answer, as CoreDNS's forward plugin does.

C{forward FROM TO... { ... }}; TO is C{IP[:PORT]}, C{dns://IP[:PORT]},
C{tls://IP[:PORT]} (DNS over TLS, port 853) or a resolv.conf file.  Options:
C{except}, C{force_tcp}, C{prefer_udp}, C{expire}, C{max_fails},
C{health_check DURATION [no_rec] [domain NAME]}, C{policy}, C{max_concurrent},
C{tls [CERT KEY [CA]]}, C{tls_servername}, C{next RCODE...}, C{failover RCODE...},
C{next_on_nodata}, C{failfast_all_unhealthy_upstreams}, C{max_connect_attempts},
C{max_idle_conns}, C{max_age}, C{read_timeout}.

A query tries the upstreams in policy order for up to 5 s: an upstream
whose health probes failed more than C{max_fails} times is skipped, and when
all are down a random one is asked anyway (unless failfast).  Queries go
over the client's transport; a truncated UDP answer is asked again over TCP.
Several forward lines in a block run in order, C{next} handing a query on.

The package: C{setup} here, the options in L{config}, the handler and its
connections in L{handler}, the metrics in L{metrics}.
"""

from __future__ import annotations

from OpenSSL import crypto
from twisted.internet.error import VerifyError

from kubernetai import options
from kubernetai.chain import ServerConfig
from kubernetai.corefile import Directive
from kubernetai.metrics import instances
from kubernetai.plugins.forward.config import parse_forward
from kubernetai.plugins.forward.handler import Forward, ForwardChain, ForwardService
from kubernetai.plugins.forward.metrics import forward_families


def setup(directives: list[Directive], config: ServerConfig) -> ForwardChain:
    """One Forward per C{forward} directive, in Corefile order."""
    forwards = [_forward(directive, config.reactor) for directive in directives]
    for forward in forwards:
        upstreams = " ".join(str(address) for address in forward.config.upstreams)
        config.plan.append(f"forward {forward.config.zone} -> {upstreams} (policy {forward.config.policy})")
    config.services.append(ForwardService(forwards, config.reactor))
    instances(config, "forward", forward_families).extend(forwards)
    return ForwardChain(forwards)


def _forward(directive: Directive, reactor) -> Forward:
    """The Forward of one directive; TLS files or a server name that TLS cannot use are its mistakes."""
    forward_config = parse_forward(directive)
    try:
        return Forward(forward_config, reactor)
    except (OSError, ValueError, crypto.Error, VerifyError) as err:
        raise options.error(directive, f"tls: cannot use the certificates or the server name: {err}") from None
