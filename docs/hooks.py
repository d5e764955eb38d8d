"""mkdocs hook: the CLI reference page, generated from the parser at every build.

`cli.md` is never written into the tree: the page is made from `mnist_bench.cli.build_parser()`
(each command's `--help`, as a terminal 100 columns wide prints it), so it cannot fall behind
the options.
"""

from __future__ import annotations

import argparse
import os

from mkdocs.structure.files import File, Files

WIDTH = "100"


def cli_reference() -> str:
    """The Markdown of the CLI reference: the top-level help, then each command's."""
    from mnist_bench import cli

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps help to the terminal's width
    try:
        parser = cli.build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parts = [
            "# CLI reference",
            "",
            "Generated from `mnist_bench.cli.build_parser()` when the site is built: each "
            "command's `--help`, word for word.",
            "",
            "## mnist-bench",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
        ]
        for name, command in sub.choices.items():
            parts += ["", f"## {name}", "", "```text", command.format_help().rstrip(), "```"]
        return "\n".join(parts) + "\n"
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def on_files(files: Files, config) -> Files:
    """Adds the generated `cli.md` to the site."""
    files.append(File.generated(config, "cli.md", content=cli_reference()))
    return files
