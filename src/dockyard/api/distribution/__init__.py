"""The /v2 API of the OCI distribution spec (end-1 … end-13)."""
