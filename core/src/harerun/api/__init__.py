"""The HTTP API (FastAPI): ``create_app(settings)``; ``harerun serve`` runs it with uvicorn."""

__all__ = ["Settings", "create_app"]


def __getattr__(name: str):
    # Imported on first use: every `harerun` command looks here for `harerun serve`, and
    # FastAPI takes half a second to import.
    if name == "create_app":
        from harerun.api.app import create_app

        return create_app
    if name == "Settings":
        from harerun.api.settings import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
