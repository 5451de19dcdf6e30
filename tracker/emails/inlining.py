"""Templates with the layout's CSS inlined once, as they load."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape

LAYOUT = "layout.html.j2"
# Whole trans blocks hide as one piece: their text is the msgid, and must reach Jinja as written.
_JINJA = re.compile(r"\{%[-+]?\s*trans\b.*?\{%[-+]?\s*endtrans\s*[-+]?%\}|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
# The HTML parser keeps comments where they are (even between table rows); in text it may escape them.
_MARK = re.compile(r"(?:<|&lt;)!--jinja:(\d+)--(?:>|&gt;)")
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)
# Minified: every element carries its style, so "color:#fff" rather than "color: #fff;" is a
# tenth off a message's HTML (a changed message listing 50 dates: 2.5 KB per copy).
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, minify_css=True)


def make_environment(folders: Path | Sequence[Path]) -> Environment:
    """Templates from *folders*: a name found in an earlier folder hides the same name in a later one."""
    environment = Environment(
        loader=InliningLoader(folders),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    # As babel.cfg extracts them: a msgid never depends on how the template is indented.
    environment.policies["ext.i18n.trimmed"] = True
    return environment


class InliningLoader(FileSystemLoader):
    """Load templates from folders; an HTML one comes with the layout's CSS inlined into its elements."""

    def __init__(self, folders: Path | Sequence[Path]) -> None:
        super().__init__(folders)
        self.css: str | None = None

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Any]:
        source, filename, uptodate = super().get_source(environment, template)
        if not template.endswith(".html.j2"):
            return source, filename, uptodate
        css = None if template == LAYOUT else self.layout_css(environment)
        return inline_template(source, css, template), filename, uptodate

    def layout_css(self, environment: Environment) -> str:
        if self.css is None:
            layout = super().get_source(environment, LAYOUT)[0]
            self.css = "\n".join(_STYLE.findall(layout))
        return self.css


def inline_template(source: str, css: str | None, name: str) -> str:
    """Return the template *source* with CSS inlined into its elements and its Jinja syntax as it was.

    Jinja syntax hides in HTML comments while css-inline parses and rewrites the page, then comes back.
    """
    hidden: list[str] = []

    def hide(match: re.Match[str]) -> str:
        hidden.append(match.group())
        return f"<!--jinja:{len(hidden) - 1}-->"

    html = inline_css(_JINJA.sub(hide, source), css)
    if [int(index) for index in _MARK.findall(html)] != list(range(len(hidden))):
        raise TemplateError(f"{name}: inlining CSS moved or dropped template syntax; keep tags where HTML allows text")
    return _MARK.sub(lambda match: hidden[int(match.group(1))], html)


def inline_css(html: str, css: str | None) -> str:
    """Inline a whole page's own <style> (css None), or *css* into a fragment."""
    if css is None:
        return _INLINER.inline(html)
    return _INLINER.inline_fragment(html, css)
