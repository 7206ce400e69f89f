"""The kubernetai test suite."""
