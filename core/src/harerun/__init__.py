"""Hare Run: self-hosted facial skin analysis with plugin detectors."""

from harerun.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "analyze", "hookimpl"]


def analyze(image, pipeline: str = "default", **kwargs):
    """Analyse one photo (a path, bytes or a BGR numpy array) with a named pipeline
    or a pipeline file; returns an :class:`harerun.results.AnalysisResult`."""
    from harerun.engine import analyze as _analyze

    return _analyze(image, pipeline=pipeline, **kwargs)
