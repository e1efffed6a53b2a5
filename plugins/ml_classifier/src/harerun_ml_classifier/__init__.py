"""Hare Run detector plugin ``ml_classifier``: acne severity grade 0-3 from a small Keras CNN.

TensorFlow is imported lazily (first ``analyze`` or training), so discovering
the plugin stays fast.
"""

__version__ = "0.1.0"
