"""The HTTP layer: routes, responses and the access log."""
