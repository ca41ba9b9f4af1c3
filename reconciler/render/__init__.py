"""Render: runs -> Kubernetes manifests, one pure function per run kind (design.md §2)."""

from reconciler.render.context import RenderError, RenderOptions
from reconciler.render.manifests import to_yaml
from reconciler.render.render import NOT_RENDERED, RENDERERS, render
from reconciler.render.templates import run_uuid

__all__ = ["NOT_RENDERED", "RENDERERS", "RenderError", "RenderOptions", "render", "run_uuid", "to_yaml"]
