"""The fault suite (issue 13): a misbehaving upstream, hostile clients, full disks, crashes."""

from __future__ import annotations
