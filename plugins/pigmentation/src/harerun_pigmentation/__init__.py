"""Hare Run pigmentation detector plugin."""
