"""A GitHub-flavoured Markdown table, so that the library needs nothing but torch.

The suite renders its tables with tabulate; `date` keeps this small renderer instead so that
installing the library pulls in no other package (cells are formatted by the caller).
"""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render `rows` under `headers` as a pipe table; numbers align right, text left."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [
        max(len(headers[column]), *(len(row[column]) for row in cells))
        for column in range(len(headers))
    ]
    numeric = [
        bool(cells) and all(_is_number(row[column]) for row in cells)
        for column in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    separator = (
        "|"
        + "|".join(
            "-" * (width + 1) + ":" if right else "-" * (width + 2)
            for width, right in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return "\n".join([line(list(headers)), separator, *(line(row) for row in cells)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
