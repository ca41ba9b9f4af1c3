"""The daemon's HTTP server: health, readiness, metrics (and, as they land, webhooks and the API)."""

from reconciler.server.app import Check, HttpServer, build_app

__all__ = ["Check", "HttpServer", "build_app"]
