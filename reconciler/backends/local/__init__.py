"""Local processes as a backend: the embedded default, for a laptop without a cluster."""

from reconciler.backends.local.backend import LocalBackend
from reconciler.backends.local.launch import ENV_ARTIFACTS, ENV_OUTPUTS, LaunchSpec, build_launch
from reconciler.backends.local.outputs import parse_outputs, read_outputs

__all__ = [
    "ENV_ARTIFACTS",
    "ENV_OUTPUTS",
    "LaunchSpec",
    "LocalBackend",
    "build_launch",
    "parse_outputs",
    "read_outputs",
]
