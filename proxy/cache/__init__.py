"""Caches: packuments in memory, tarballs and packuments on disk, and single-flight fetching."""
