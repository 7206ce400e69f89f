# -*- test-case-name: tests.test_daemon -*-
"""
From a Corefile to a running daemon: build every server block's chain, the
listeners, and the plan that C{--validate} prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.application import service

from kubernetai.chain import ServerConfig, Shared, build_server
from kubernetai.corefile import load_corefile
from kubernetai.server import DNSService, ZoneTable, listener_tables
from kubernetai.systemd import ReadinessNotifier


@dataclass
class Daemon:
    """Everything a Corefile asks for, built but not yet listening."""

    path: str
    configs: list[ServerConfig]
    tables: dict[tuple[str, int], ZoneTable]
    shared: Shared

    def plan(self) -> str:
        """What would run: blocks, listeners, plugins in run order."""
        lines = [f"Corefile {self.path}: {len(self.configs)} server block(s)"]
        for config in self.configs:
            block = config.block
            lines.append(f"server block {' '.join(block.keys)} ({block.file}:{block.line})")
            for address in config.zones:
                hosts = ", ".join(config.bind_hosts) or "all addresses"
                lines.append(f"  listens {address.scheme}://{address.zone}:{address.port} udp+tcp on {hosts}")
            lines.append("  plugins in run order:")
            lines += [f"    {step}" for step in config.plan]
        return "\n".join(lines)

    def service(self, reactor=None) -> service.MultiService:
        """Every plugin's own services, then the DNS listeners, as one service."""
        root = service.MultiService()
        for config in self.configs:
            for plugin_service in config.services:
                plugin_service.setServiceParent(root)
        for shared_service in self.shared.services.values():
            shared_service.setServiceParent(root)
        waits = [wait for config in self.configs for wait in config.startup_waits]
        dns_service = DNSService(self.tables, reactor, waits)
        dns_service.setName("dns")
        dns_service.setServiceParent(root)
        ReadinessNotifier(dns_service.listening).setServiceParent(root)
        return root


def build_daemon(path: str, default_port: int = 53) -> Daemon:
    """Parse the Corefile at C{path} and build it; raises CorefileError on a mistake."""
    blocks = load_corefile(path, default_port=default_port)
    shared = Shared()
    configs = [build_server(block, shared) for block in blocks]
    return Daemon(path, configs, listener_tables(configs), shared)
