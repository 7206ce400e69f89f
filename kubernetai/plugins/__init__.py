"""The plugins of the chain, one module per CoreDNS plugin."""
