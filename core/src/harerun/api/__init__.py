"""The HTTP API (FastAPI): ``create_app(settings)``; ``harerun serve`` runs it with uvicorn."""

from harerun.api.app import create_app
from harerun.api.settings import Settings

__all__ = ["Settings", "create_app"]
