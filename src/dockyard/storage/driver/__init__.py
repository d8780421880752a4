"""Storage drivers: where bytes live (a folder by default)."""
