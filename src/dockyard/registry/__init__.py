"""The rules of a registry on top of storage and metadata."""
