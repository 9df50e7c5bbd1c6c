"""Errors every floor may raise or catch, defined below all of them (no imports)."""

from __future__ import annotations


class FieldError(ValueError):
    """Invalid input: ``field`` names the form field, ``str(e)`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ExpiredLotError(FieldError):
    """The lot was past its expiry on the treatment date and no override reason was given."""
