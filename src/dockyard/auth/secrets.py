"""Passwords (argon2) and access tokens (random, stored as their sha256)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from concurrent.futures import Executor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "dky_"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def verify_password(
    password_hash: str, password: str, executor: Executor | None = None
) -> bool:
    """Check a password off the event loop (argon2 is deliberately slow and memory-hungry)."""

    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.get_running_loop().run_in_executor(executor, verify)


def new_password() -> str:
    return secrets.token_urlsafe(18)


def new_token() -> str:
    """A fresh access token; shown once, only its hash is kept."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_token(secret: str) -> bool:
    return secret.startswith(TOKEN_PREFIX)
