"""Floodgate: an npm registry proxy that keeps token-farming spam and malware out of installs."""

from __future__ import annotations

__version__ = "0.1.0"
