"""kubernetai: a DNS server for Kubernetes service discovery across several clusters."""
