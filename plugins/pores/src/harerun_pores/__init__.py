"""Hare Run pores detector plugin (entry point ``harerun_pores.plugin``)."""
