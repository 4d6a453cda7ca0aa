"""The web dashboard: queries over the decision log and verdicts, and their HTML pages."""

from __future__ import annotations
