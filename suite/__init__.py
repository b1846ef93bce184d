"""Benchmark comparison suite: one harness, many method plugins, paper-style tables.

Importing this package changes no global torch state (threads, cudnn flags); the CLI does that.
"""
__version__ = "0.1.0"
