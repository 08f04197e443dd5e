"""Errors shared by the package."""


class UserError(ValueError):
    """A problem with the user's input; the CLI prints it as one line and exits with code 2."""


class IngestError(UserError):
    """An input was rejected whole; `problems` holds one line per problem (file, row, column, reason), and `found`
    the problems of each input (by its label) as (row, column, reason)."""

    def __init__(self, problems: list[str], found: dict[str, list[tuple[int, str, str]]] | None = None) -> None:
        super().__init__(f"{len(problems)} problem(s), nothing ingested:\n" + "\n".join(problems))
        self.problems = problems
        self.found = found or {}
