"""kubernetai: a DNS server for Kubernetes service discovery across several clusters."""

__version__ = "0.2.0"
