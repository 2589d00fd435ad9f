"""The README stays a user guide: under 30 KB, with a table of contents that names every
section; the design document and the HTTP reference it links to exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_README_BYTES = 30_000


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


def test_the_readme_is_short_and_its_contents_list_every_section() -> None:
    text = README.read_text()
    assert len(text.encode()) < MAX_README_BYTES
    sections = re.findall(r"^## (.+)$", text, re.MULTILINE)
    listed = re.findall(r"^- \[(.+)\]\(#(.+)\)$", text.split("## Contents", 1)[1], re.MULTILINE)
    assert [(name, anchor(name)) for name in sections if name != "Contents"] == listed


def test_the_documents_the_readme_links_to_exist() -> None:
    for target in re.findall(r"\]\((docs/[^)#]+)", README.read_text()):
        assert (ROOT / target).is_file(), target
