"""Local processes as a backend: the embedded default, for a laptop without a cluster."""

from reconciler.backends.local.backend import LocalBackend
from reconciler.backends.local.launch import ENV_ARTIFACTS, ENV_OUTPUTS, LaunchSpec, build_launch
from reconciler.backends.local.outputs import parse_outputs, read_outputs
from reconciler.backends.local.users import RunUser, run_user

__all__ = [
    "ENV_ARTIFACTS",
    "ENV_OUTPUTS",
    "LaunchSpec",
    "LocalBackend",
    "RunUser",
    "build_launch",
    "parse_outputs",
    "read_outputs",
    "run_user",
]
