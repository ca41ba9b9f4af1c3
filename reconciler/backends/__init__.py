"""Run backends: where desired runs become real work (Kubernetes or local processes)."""

from reconciler.backends.base import (
    Backend,
    BackendError,
    PermanentBackendError,
    TransientBackendError,
    UnsupportedKind,
)

__all__ = ["Backend", "BackendError", "PermanentBackendError", "TransientBackendError", "UnsupportedKind"]
