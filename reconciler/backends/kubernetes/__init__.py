"""The Kubernetes backend: render, apply, watch; see backend.py."""

from reconciler.backends.kubernetes.backend import FIELD_MANAGER, ConflictError, Drift, KubernetesBackend
from reconciler.backends.kubernetes.statuses import Mapped, status_of

__all__ = ["FIELD_MANAGER", "ConflictError", "Drift", "KubernetesBackend", "Mapped", "status_of"]
