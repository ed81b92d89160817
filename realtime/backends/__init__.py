"""Inference backends: one small interface (``base.Backend``), picked by name or by ``--backend auto``."""
