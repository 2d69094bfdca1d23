"""The API: one table of operations shared by every transport and the server."""

from .operations import OPERATIONS, Operation, authorize, operation

__all__ = ["OPERATIONS", "Operation", "authorize", "operation"]
