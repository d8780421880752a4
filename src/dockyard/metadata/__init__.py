"""Metadata: tables, queries and migrations (SQLite by default, PostgreSQL for several nodes)."""
