"""FLEX diffusion models, their data sets, training and evaluation.

The solver lives in the top-level package ``solver`` (no torch); the in-process coupling of the two
lives in ``coupling``.
"""
__version__ = "0.1.0"
