"""Every cross-reference to a section of the README or of docs/ names a heading that exists
(comments, docstrings, Makefile, shell scripts and the docs themselves are read as text)."""

import os
import re


from tests.conftest import REPO

# README "Quick start", README, "Demo", docs/tables.md, "Interruptions", docs/sources.md ("Evaluation protocols"
REFERENCE = re.compile(r'\b(README(?:\.md)?|docs/[\w-]+\.md)(?:,? +\(?|\()"([^"\n]{3,80})"')
TEXT_FILES = (".py", ".md", ".sh", "Makefile")
SKIP_DIRS = {".git", ".venv", "__pycache__", "demo_data", "train_log", "results", ".pytest_cache"}


def headings(path):
    """The titles of a Markdown file's sections, lower-cased: its '#' headings and the bold leads that
    open a paragraph (``**Resume.** Re-run ...``), which the docs use as sub-sections."""
    titles = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                titles.append(line.lstrip("#").strip().lower())
            elif line.startswith("**") and "**" in line[2:]:
                titles.append(line[2 : line.index("**", 2)].strip().lower())
    return titles


def references():
    """(file:line, document, section) of every section reference in the repository's text files."""
    out = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            if not name.endswith(TEXT_FILES) or name == os.path.basename(__file__):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    for doc, section in REFERENCE.findall(line):
                        doc = "README.md" if doc.startswith("README") else doc
                        out.append((f"{os.path.relpath(path, REPO)}:{number}", doc, section))
    return out


def dangling(refs):
    """The references whose document is missing or has no heading containing the section's words."""
    bad = []
    for where, doc, section in refs:
        path = os.path.join(REPO, doc)
        if not os.path.isfile(path) or not any(section.lower() in h for h in headings(path)):
            bad.append(f'{where}: {doc} has no section "{section}"')
    return bad


def test_the_pattern_finds_the_reference_forms_in_use():
    found = REFERENCE.findall(
        'see README, "Demo"; docs/tables.md, "Reuse" and docs/sources.md ("Evaluation x", ...)'
    )
    assert found == [
        ("README", "Demo"),
        ("docs/tables.md", "Reuse"),
        ("docs/sources.md", "Evaluation x"),
    ]


def test_a_reference_to_a_missing_section_is_reported():
    bad = dangling(
        [
            ("x.py:1", "README.md", "No such section anywhere"),
            ("x.py:2", "README.md", "Quick start"),
            ("x.py:3", "docs/training.md", "Resume"),
            ("x.py:4", "docs/nothing.md", "Quick start"),
        ]
    )
    assert bad == [
        'x.py:1: README.md has no section "No such section anywhere"',
        'x.py:4: docs/nothing.md has no section "Quick start"',
    ]


def test_every_section_reference_points_to_an_existing_heading():
    refs = references()
    assert len(refs) >= 10  # the repository's own references were read
    assert dangling(refs) == []


# a speed or a duration as measured: "12.0 img/s", "0.43 ms", "9 min 59 s", "49 microseconds", "3.2 s wall"
MEASURED = re.compile(
    r"\b\d[\d,]*(?:\.\d+)? ?(?:img/s|images/s|steps/s|ms\b|microseconds|us\b|min \d+ s\b|s wall|CPU-s)"
)
# where measured figures live: the measurements themselves, and the demo's results with their provenance
MEASUREMENT_DOCS = ("docs/measurements.md", "docs/claims.md")


def measured_figures():
    """``file:line: text`` of every measured-looking figure outside MEASUREMENT_DOCS (tests excluded)."""
    out = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS | {"tests"}]
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, REPO)
            if not name.endswith(TEXT_FILES) or rel in MEASUREMENT_DOCS:
                continue
            with open(path, encoding="utf-8") as f:
                out += [
                    f"{rel}:{n}: {line.strip()}"
                    for n, line in enumerate(f, 1)
                    if MEASURED.search(line)
                ]
    return out


def test_measured_figures_stand_only_in_docs_measurements():
    """A figure measured on one machine drifts when it is restated (the README once gave 344 tests
    against docs/measurements.md's 357): outside docs/measurements.md and docs/claims.md, point there."""
    assert measured_figures() == []


def test_the_figure_pattern_finds_measurements_not_settings():
    hits = [
        "12.0 img/s",
        "0.43 ms an image",
        "9 min 59 s",
        "49 microseconds",
        "0.28 s wall",
        "0.37 CPU-s",
    ]
    assert all(MEASURED.search(h) for h in hits)
    assert not any(
        MEASURED.search(t) for t in ["--vis-scale 4", "timeout 30 s", "N img/s", "msg", "512 ms_"]
    )
