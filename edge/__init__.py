"""Kairos Edge: the server. Owns all I/O: HTTP, Redis and its Lua scripts, config loading."""

__version__ = "0.1.0"
