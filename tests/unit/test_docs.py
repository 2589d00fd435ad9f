"""The README stays a user guide: under 30 KB, with a table of contents that names every
section; the design document and the HTTP reference it links to exist."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from kvnode.config import NodeConfig

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


def section(text: str, heading: str) -> str:
    """The text under `## heading`, up to the next `## `."""
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_limits_name_every_limit_setting_of_the_reference() -> None:
    """Both list the limits: the README with defaults, the reference with what a request
    beyond each gets. Every setting of one is in the other."""
    settings = {field.name for field in dataclasses.fields(NodeConfig)}
    reference = section((ROOT / "docs" / "http-api.md").read_text(), "Limits")
    readme = section(README.read_text(), "Limits")
    named = {name for name in re.findall(r"`([a-z_]+)`", reference) if name in settings}
    assert named, "the reference's limits name no setting: the check would prove nothing"
    assert named == {name for name in re.findall(r"`([a-z_]+)`", readme) if name in settings}
