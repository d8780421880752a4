"""The HTTP edge: /v2 (distribution), /token, and the only place that knows status codes."""
