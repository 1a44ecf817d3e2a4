"""A GitHub-flavoured Markdown table, so that the library needs nothing but torch.

The suite renders its tables with tabulate; `date` keeps this small renderer instead so that
installing the library pulls in no other package (cells are formatted by the caller). The layout
follows tabulate's "github" format: columns at least two wider than their header, dashes only.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Extra width of a column over its header (tabulate's MIN_PADDING).
_HEADER_PADDING = 2


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, numbers_right: bool = True
) -> str:
    """Render `rows` under `headers` as a pipe table.

    Text is left-aligned; with `numbers_right`, so are numbers unless their whole column is numeric,
    which is then right-aligned.
    """
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [
        max(len(header) + _HEADER_PADDING, *(len(row[column]) for row in cells))
        for column, header in enumerate(headers)
    ]
    right = [
        numbers_right and bool(cells) and all(_is_number(row[column]) for row in cells)
        for column in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.rjust(width) if align_right else value.ljust(width)
            for value, width, align_right in zip(values, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(list(headers)), separator, *(line(row) for row in cells)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
