"""Hare Run texture detector plugin."""
