"""Accounts and access: who is asking (subjects), and what they may do (policy)."""
