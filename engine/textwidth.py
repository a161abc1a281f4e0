"""Terminal column widths, so Japanese (wide) text lines up in CLI tables."""

from __future__ import annotations

import unicodedata


def display_width(text: str) -> int:
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(display_width(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(pad(cell, w) for cell, w in zip(row, widths)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def shorten_middle(text: str, width: int) -> str:
    """`text` in at most `width` cells, the middle left out (…): a path keeps its start and its file
    name, which says the most, or as much of its end as fits."""
    if display_width(text) <= width:
        return text
    cut = text.rstrip("/").rfind("/")
    name = text[cut:] if cut >= 0 else ""  # a path's last part, with its slash
    tail = name if name and display_width(name) <= width - 4 else _last_cells(text, (width - 1) * 2 // 3)
    head = _first_cells(text, width - 1 - display_width(tail))
    return f"{head}…{tail}"


def _first_cells(text: str, width: int) -> str:
    out = ""
    for ch in text:
        if display_width(out + ch) > width:
            break
        out += ch
    return out


def _last_cells(text: str, width: int) -> str:
    return _first_cells(text[::-1], width)[::-1]


# Japanese punctuation that never starts a line (kinsoku): it hangs at the end of the line before,
# one cell pair past the width (argparse leaves two columns free for it)
NO_LINE_START = frozenset("、。，．）」』】！？：；")


def wrap_cells(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` cells, broken at spaces and between wide characters
    (Japanese has no spaces to break at, and each of its characters takes two cells)."""
    lines, line = [], ""
    for token, spaced in _tokens(text):
        joined = line + (" " if spaced and line else "") + token
        if line and display_width(joined) > width and token not in NO_LINE_START:
            lines.append(line)
            joined = token
        line = joined
    return [*lines, line] if line else lines


def _tokens(text: str):
    """The words of `text` (wide characters one by one), each with whether a space comes before it."""
    for word in text.split():
        spaced, narrow = True, ""
        for ch in word:
            if unicodedata.east_asian_width(ch) not in "WF":
                narrow += ch
                continue
            if narrow:
                yield narrow, spaced
                spaced, narrow = False, ""
            yield ch, spaced
            spaced = False
        if narrow:
            yield narrow, spaced
