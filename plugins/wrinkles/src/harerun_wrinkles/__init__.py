"""Hare Run wrinkles detector plugin."""
