"""Hare Run dark-spots detector plugin (entry point ``harerun_dark_spots.plugin``)."""
