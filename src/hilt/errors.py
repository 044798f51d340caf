"""Errors that reach users. Each names where the problem is: file, line and field."""

from __future__ import annotations


class HiltError(Exception):
    """Base for expected failures; the CLI prints them and exits with code 2."""

    exit_code = 2


class InputError(HiltError):
    """Bad input: names the file, the line (1-based) and the field when known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file, self.line, self.field, self.reason = file, line, field, message
        where = []
        if file is not None:
            where.append(str(file))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "field": self.field,
                "reason": self.reason}


class NotFound(HiltError):
    pass


class Conflict(HiltError):
    pass


class Forbidden(HiltError):
    pass
