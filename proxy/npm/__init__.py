"""The npm registry protocol model: names, packuments, integrity. Pure, no I/O."""
