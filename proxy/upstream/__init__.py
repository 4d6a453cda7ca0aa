"""The upstream registry: the only place Floodgate talks to the network."""
