"""Policy: YAML rules that turn the detector's verdicts into serve, warn, hide or block."""
