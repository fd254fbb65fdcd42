"""A worker runtime that serves Runpod Flash load-balanced apps over HTTP."""

__version__ = "0.1.0"
