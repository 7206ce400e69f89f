"""The twistd plugin: C{twistd kubernetai} runs the daemon of kubernetai.tap."""

from twisted.application.service import ServiceMaker

kubernetai = ServiceMaker(
    "kubernetai",
    "kubernetai.tap",
    "A DNS server for Kubernetes service discovery across several clusters",
    "kubernetai",
)
