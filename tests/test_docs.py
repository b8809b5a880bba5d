"""The documents hold to the tree: the layout lists every module, links land, the README stays short.

Reads files only (no Redis, no worker), so it runs in a second.
"""

import re
from pathlib import Path

import pytest

from api.errors import HTTP_STATUS_OF
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ARCHITECTURE = DOCS / "architecture.md"
README = ROOT / "README.md"
README_MAX_LINES = 260
# The packages whose every module the layout must list.
LAYOUT_ROOTS = ("api", "core", "broker", "worker", "ops", "launcher", "scripts", "bench")

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")


def markdown_files() -> list[Path]:
    """Every document whose links are checked."""
    return [README, ROOT / "README.vi.md", *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, numbered as GitHub numbers repeated ones."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def layout() -> dict[str, str]:
    """The fenced block of architecture.md's Layout section: one path per line, then its role."""
    section = ARCHITECTURE.read_text(encoding="utf-8").split("\n## Layout\n", 1)[1]
    block = re.search(r"^```text\n(.*?)^```", section, re.S | re.M)
    assert block, "docs/architecture.md: the Layout section has no ```text block"
    entries: dict[str, str] = {}
    for line in block.group(1).splitlines():
        if not line.strip():
            continue
        path, _, role = line.partition(" ")
        assert role.strip(), f"layout: {path} has no role"
        assert path not in entries, f"layout: {path} is listed twice"
        entries[path] = role.strip()
    return entries


def test_every_layout_path_exists():
    missing = [path for path in layout() if not (ROOT / path).exists()]
    assert not missing, f"docs/architecture.md lists paths that don't exist: {missing}"


def test_layout_lists_every_module_and_package():
    listed = set(layout())
    unlisted = []
    for root in LAYOUT_ROOTS:
        for module in sorted((ROOT / root).rglob("*.py")):
            relative = module.relative_to(ROOT)
            if "__pycache__" in relative.parts:
                continue
            # A package's __init__.py is covered by its folder's line.
            is_package = module.name == "__init__.py"
            wanted = f"{relative.parent.as_posix()}/" if is_package else relative.as_posix()
            if wanted not in listed:
                unlisted.append(wanted)
    assert not unlisted, f"docs/architecture.md's Layout doesn't list: {sorted(set(unlisted))}"


def test_readme_is_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the rest belongs under docs/"


@pytest.mark.parametrize("document", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_relative_links_land(document: Path):
    broken = []
    for line in prose_lines(document.read_text(encoding="utf-8")):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            linked = (document.parent / path_part).resolve() if path_part else document
            if not linked.exists():
                broken.append(f"{target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{target} (no such heading)")
    assert not broken, f"{document.relative_to(ROOT)}: broken links {broken}"


def test_every_setting_is_documented():
    table = (DOCS / "configuration.md").read_text(encoding="utf-8")
    rows = "\n".join(line for line in table.splitlines() if line.startswith("| `"))
    undocumented = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in rows]
    assert not undocumented, f"docs/configuration.md has no row for: {undocumented}"


def test_every_error_status_is_explained():
    section = (DOCS / "api.md").read_text(encoding="utf-8").split("\n## Errors\n", 1)[1]
    explained = {int(code) for code in re.findall(r"^\| `(\d{3})` \|", section, re.M)}
    unexplained = sorted(set(HTTP_STATUS_OF.values()) - explained)
    assert not unexplained, f"docs/api.md's Errors table has no row for: {unexplained}"
