"""The one error type of the library, and the notes the lenient path records."""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike


class DataSpecError(ValueError):
    """Any DataSpec problem: unreadable file, contract violation, unresolvable image.

    The message names the file (when there is one) and the JSON path of the problem.
    Re-raise with `renamed` to add the file while keeping the reason, path and code.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | PathLike[str] | None = None,
        where: str | None = None,
        code: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.where = where
        self.reason = message
        self.code = code
        """A stable name for failures callers count (e.g. `empty_reply`); None otherwise."""
        parts = []
        if self.file:
            parts.append(self.file)
        if where:
            parts.append(where)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def renamed(self, file: str | PathLike[str]) -> DataSpecError:
        """The same error naming `file`."""
        return DataSpecError(self.reason, file=file, where=self.where, code=self.code)


@dataclass(frozen=True)
class Note:
    """One coercion or drop made while normalizing: a stable `code`, where, and what."""

    code: str
    message: str
    where: str = "$"

    def __str__(self) -> str:
        return f"[{self.code}] {self.where}: {self.message}"
