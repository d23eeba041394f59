"""Errors raised on bad input: each names the parameter and the allowed range."""

from __future__ import annotations


class ShallowflowInputError(ValueError):
    """Bad user input. The message names the parameter and what is allowed."""

    def __init__(self, param: str, message: str):
        self.param = param
        super().__init__(f"{param}: {message}")


def require(cond: bool, param: str, message: str) -> None:
    """Raise :class:`ShallowflowInputError` for ``param`` unless ``cond`` holds."""
    if not cond:
        raise ShallowflowInputError(param, message)
