"""polyaxon-reconciler: a GitOps reconciler daemon for Polyaxon polyaxonfiles."""

__version__ = "0.1.0"
