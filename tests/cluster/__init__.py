"""The real Kubernetes control plane the integration tests run against.

build.sh builds the binaries once per machine, controlplane.ControlPlane runs them on loopback
ports, and fixtures.py exposes them to pytest as `k8s_cluster` and `k8s_namespace`.
"""
