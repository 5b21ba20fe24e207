"""The flag tables of docs/ list exactly the flags of the parsers they document: a flag added to a
parser without a line in its doc, or a line left for a flag that is gone, fails here."""

import argparse
import os
import re

import pytest

from tests.conftest import REPO

FLAG = re.compile(r"`(--[a-z0-9-]+)")


def flag_rows(doc, root=REPO):
    """``{flag: the default column's text for it}`` of the rows of ``doc``'s tables that start with a
    flag: a row of several flags (`--lr`, `--lr-step-epochs`) gives each its own comma-separated part;
    a store_true pair (`--flip` / `--no-flip`) shares one."""
    out = {}
    with open(os.path.join(root, doc), encoding="utf-8") as f:
        for line in f:
            if not line.startswith("| `--"):
                continue
            # the cells, split at | but not at \| (`--table 1\|2`)
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            flags = FLAG.findall(cells[0])
            parts = [p.strip() for p in cells[1].split(",")] if len(cells) > 1 else [""]
            for i, flag in enumerate(flags):
                out[flag] = parts[i] if len(parts) == len(flags) else cells[1]
    return out


def flags_of(parser):
    return {
        s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"
    }


def train_parser():
    from runrecord import command

    return command.parser()


def tables_parser():
    from reproduce import __main__ as cli

    return cli.build_parser()


def evaluate_parser(monkeypatch):
    import evaluate

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", lambda self, argv=None: self)
    return evaluate.parse_args([])


# each flag table and the parser it documents
DOCUMENTED = [
    ("docs/training.md", train_parser),
    ("docs/tables.md", tables_parser),
    ("docs/evaluation.md", evaluate_parser),
]


def parser_of(make, monkeypatch):
    return make(monkeypatch) if make is evaluate_parser else make()


@pytest.mark.parametrize("doc, make", DOCUMENTED)
def test_each_flag_table_lists_its_parser_s_flags(doc, make, monkeypatch):
    parser = parser_of(make, monkeypatch)
    assert set(flag_rows(doc)) == flags_of(parser)


def test_the_reader_takes_the_first_column_of_flag_rows_only(tmp_path):
    (tmp_path / "doc.md").write_text(
        "| `--a`, `--b N` | 1 | see `--x` |\n| `--c` / `--no-c` | | y |\ntext `--d`\n"
    )
    assert set(flag_rows("doc.md", root=tmp_path)) == {"--a", "--b", "--c", "--no-c"}


def test_our_additions_are_marked_ours_in_train_help():
    """The README says our additions are marked as ours in --help: every settings field whose source
    starts with "ours" says so in its train.py flag's help (the word was once stripped)."""
    import dataclasses

    from runrecord.settings import ModelSettings, SpeedSettings, TrainSettings, flag_name, is_flag

    helps = {s: a.help for a in train_parser()._actions for s in a.option_strings}
    ours = [
        flag_name(cls, f.name)
        for cls in (ModelSettings, TrainSettings, SpeedSettings)
        for f in dataclasses.fields(cls)
        if is_flag(cls, f.name) and f.metadata["source"].startswith("ours")
    ]
    assert len(ours) > 5
    assert [f for f in ours if "ours" not in helps[f]] == []


def default_problem(flag, default, text):
    """Why the doc's ``text`` does not state the parser's ``default`` (None if it does): a number or a
    name must lead the text (`1e-4` for 0.0001, `` `paper` ``); an off switch reads "off"."""
    lead = text.split(" (")[0].strip("`* ")
    if default is False:
        return None if lead.startswith("off") else f"{flag}: off by default, the doc says {text!r}"
    if default is None or default is True:
        return None
    try:
        same = float(lead) == float(default)
    except ValueError:
        same = lead == str(default)
    return None if same else f"{flag}: the parser's default is {default!r}, the doc says {text!r}"


@pytest.mark.parametrize("doc, make", DOCUMENTED)
def test_each_flag_table_states_its_parser_s_defaults(doc, make, monkeypatch):
    """The defaults in the docs are the parsers' (a default changed in the code and not in its doc fails)."""
    parser = parser_of(make, monkeypatch)
    said = flag_rows(doc)
    bad = [
        default_problem(s, a.default, said[s])
        for a in parser._actions
        for s in a.option_strings
        if s in said and not s.startswith("--no-")
    ]
    assert [b for b in bad if b] == []


def test_a_stated_default_that_differs_is_found(tmp_path):
    (tmp_path / "doc.md").write_text(
        "| `--lr`, `--epochs` | 0.1, 1500 | x |\n| `--amp` | on | y |\n"
        "| `--wd` | 1e-4 | z |\n| `--recipe` | `paper` | r |\n"
    )
    said = flag_rows("doc.md", root=tmp_path)
    assert default_problem("--lr", 0.1, said["--lr"]) is None
    assert (
        default_problem("--epochs", 1000, said["--epochs"])
        == "--epochs: the parser's default is 1000, the doc says '1500'"
    )
    assert default_problem("--amp", False, said["--amp"]) is not None
    assert (
        default_problem("--wd", 0.0001, said["--wd"]) is None
        and default_problem("--recipe", "paper", said["--recipe"]) is None
    )
