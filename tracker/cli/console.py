"""The terminal consoles: data reaches the terminal as text, never as markup or control codes.

Names, titles and file names come from subscribers and timeline files. Printed as they are,
`[/oops]` would be read as a closing markup tag (rich raises), `:warning:` as an emoji, and an
escape sequence (ESC ] 8 … a hyperlink, ESC [ 2 J a cleared screen) would act on the
secretariat's terminal. So markup and emoji codes are off (colours are styles, given apart
from the text), and every piece of text is cleaned as it is rendered, whichever way it came.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from tracker.display import printable


class TerminalConsole(Console):
    """A rich Console that writes every piece of text through `printable`."""

    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(stderr=stderr, highlight=False, markup=False, emoji=False)

    def render_str(self, text: str, **options: Any) -> Text:
        """Turn a string into Text with control characters escaped first, so the layout counts what is shown."""
        return super().render_str(printable(text), **options)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        # A last guard for Text built elsewhere: nothing reaches the terminal unescaped, even if a
        # table measured the text before the escapes made it longer.
        for segment in super().render(renderable, options):
            if segment.control or not segment.text or segment.text.isprintable():
                yield segment
            else:
                yield Segment(printable(segment.text), segment.style)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Return a line of plain text and (text, style) pairs: the colour is given apart from the words."""
    return Text.assemble(*(printable(p) if isinstance(p, str) else (printable(p[0]), p[1]) for p in parts))
