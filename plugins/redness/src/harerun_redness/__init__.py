"""Hare Run redness detector plugin."""
