"""Report pages with their plots inline: what `kvnode chaos --report` and `kvnode bench
--report` write. A page is one HTML file with matplotlib's SVG in it, so it reads
offline, with no script and nothing fetched. matplotlib comes with the `report` extra
and is imported only when a page is drawn."""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
.valid { color: #2a9d55; } .invalid { color: #d1495b; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
svg { max-width: 100%; height: auto; }
"""


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: no display, figures only become SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def figure_svg(figure: Any) -> str:
    """The figure as an inline `<svg>` element (no XML declaration or doctype); closed."""
    text = io.StringIO()
    figure.tight_layout()
    figure.savefig(text, format="svg")
    pyplot().close(figure)
    svg = text.getvalue()
    return svg[svg.index("<svg") :]


def write_page(path: Path, title: str, sections: list[str]) -> Path:
    """The page: `title` is plain text (escaped here); `sections` are HTML already."""
    body = "\n".join(sections)
    path.write_text(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
    return path
