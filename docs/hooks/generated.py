"""MkDocs hook: pages generated from the code, so they cannot drift from it.

A page holding ``<!-- generated: cli-reference -->`` gets every command's ``--help`` (from
the argparse parsers themselves, subcommands included); ``<!-- generated: config-reference -->``
gets a table of every ``pxcluster.toml`` key (from the configuration dataclasses, with the
comments of ``pxcluster.profile._config``'s documented example as their meaning).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from pxcluster.cli import cluster, controller, engine, relay
from pxcluster.dashboard import _process as dashboard
from pxcluster.profile import _config

CLI_MARK = "<!-- generated: cli-reference -->"
CONFIG_MARK = "<!-- generated: config-reference -->"
BENCH_MARK = "<!-- generated: benchmark-table -->"
#: ``<!-- generated: readme "TITLE" -->``: the README's section of that title (its ``##``
#: heading left out, its ``###`` headings made ``##``), so a page and the README say the same.
README_MARK = re.compile(r'<!-- generated: readme "([^"]+)" -->')
ROOT = Path(__file__).resolve().parent.parent.parent
#: Folders outside docs/src whose files the site serves as they are (the README's screenshot).
SHARED_ASSETS = ("docs/screens",)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal's width
    parts = []
    for module in (cluster, controller, engine, relay, dashboard):
        parser = module.parser()
        parts.append(f"## `{parser.prog}`\n\n```text\n{parser.format_help()}```\n")
        for name, sub in _subcommands(parser).items():
            parts.append(f"### `{parser.prog} {name}`\n\n```text\n{sub.format_help()}```\n")
    return "\n".join(parts)


def documented_keys() -> dict[str, tuple[str, str]]:
    """key -> (section, comment) from the example in ``_config``'s docstring."""
    keys: dict[str, tuple[str, str]] = {}
    section = ""
    last = ""
    for line in (_config.__doc__ or "").splitlines():
        line = line.strip()
        if m := re.fullmatch(r"\[(\w+)\]", line):
            section = m[1]
        elif m := re.match(r"(\w+)\s*=\s*(.*?)\s*(?:#\s*(.*))?$", line):
            keys[m[1]] = (section, m[3] or "")
            last = m[1]
        elif line.startswith("#") and last:  # a comment continuing the previous key's
            s, text = keys[last]
            keys[last] = (s, f"{text} {line.lstrip('# ')}".strip())
    return keys


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[]" if not value else str(list(value))
    return repr(value)


def config_reference() -> str:
    documented = documented_keys()
    rows = ["| section | key | default | meaning |", "| --- | --- | --- | --- |"]
    for cls, fallback in (
        (_config.ClusterConfig, "controller"),
        (_config.LauncherConfig, "launcher"),
    ):
        attributes = _attributes(cls.__doc__ or "")
        for field in dataclasses.fields(cls):
            if field.name == "extra":
                continue
            section, meaning = documented.get(field.name, (fallback, ""))
            if cls is _config.LauncherConfig:
                section = "launcher] or [NAME"
            meaning = meaning or attributes.get(field.name, "")
            rows.append(f"| `[{section}]` | `{field.name}` | `{_default(field)}` | {meaning} |")
    return "\n".join(rows) + "\n"


def _attributes(doc: str) -> dict[str, str]:
    """``name: meaning`` lines of a Google-style ``Attributes:`` section."""
    found: dict[str, str] = {}
    name = ""
    for line in doc.split("Attributes:", 1)[-1].splitlines() if "Attributes:" in doc else []:
        if m := re.match(r"\s{8}(\w+): (.*)", line):
            name = m[1]
            found[name] = m[2]
        elif name and line.strip():
            found[name] += " " + line.strip()
    return found


def benchmark_table() -> str:
    """benchmarks/results/latest.md, its links to files beside it made plain text (the site
    does not serve the raw JSON)."""
    text = (ROOT / "benchmarks" / "results" / "latest.md").read_text()
    text = re.sub(r"^# .*\n", "", text, count=1)  # the page has its own title
    return re.sub(r"\[([^\]]+)\]\((?!https?:)[^)]+\)", r"`benchmarks/results/\1`", text)


def readme_section(title: str) -> str:
    """The README's ``## TITLE`` section, links to repository files made plain text."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise ValueError(f"README.md has no section '## {title}'")
    body = re.sub(r"^### ", "## ", match[1], flags=re.M)
    return re.sub(r"\[([^\]]+)\]\((?!https?:|#)[^)]+\)", r"\1", body)


def on_files(files: Files, config: Any) -> Files:
    for folder in SHARED_ASSETS:
        for path in sorted((ROOT / folder).glob("*.png")):
            rel = path.relative_to(ROOT / "docs").as_posix()
            files.append(File(rel, str(ROOT / "docs"), config["site_dir"], False))
    return files


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if CLI_MARK in markdown:
        markdown = markdown.replace(CLI_MARK, cli_reference())
    if CONFIG_MARK in markdown:
        markdown = markdown.replace(CONFIG_MARK, config_reference())
    markdown = README_MARK.sub(lambda m: readme_section(m[1]), markdown)
    if BENCH_MARK in markdown:
        markdown = markdown.replace(BENCH_MARK, benchmark_table())
    return markdown
