"""Hare Run acne detector plugin (entry point ``harerun_acne.plugin``)."""
