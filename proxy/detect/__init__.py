"""The detector: facts about a package in, a verdict with evidence out. Pure, no network."""
