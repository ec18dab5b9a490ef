"""Local web viewer for runs and output folders: ``serve(root)``, ``make_server(...)``."""

from unflat.export.viewer.server import ViewerBackend, ViewerServer, make_server, resolve_under_root, serve

__all__ = ["ViewerBackend", "ViewerServer", "make_server", "resolve_under_root", "serve"]
