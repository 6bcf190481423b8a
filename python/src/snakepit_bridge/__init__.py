"""Snakepit bridge: the Python worker side of Snakepit."""

__version__ = "0.1.0"
