"""The daemon's HTTP server: health, readiness, metrics, webhooks, the API and pages, behind a
guard (who may call what) and bounded in time and connections."""

from reconciler.server.app import Check, HttpServer, build_app
from reconciler.server.guard import Access, Guard
from reconciler.server.protocol import Limits

__all__ = ["Access", "Check", "Guard", "HttpServer", "Limits", "build_app"]
