"""mkdocs hook: the CLI reference page, generated from the parser at every build.

`docs/cli.md` in the tree only says where its content comes from; at build time its Markdown is
replaced by `mnist_bench.cli.build_parser()`'s help (each command's `--help`, as a terminal 100
columns wide prints it), so the page cannot fall behind the options. Nothing is written into
the tree.
"""

from __future__ import annotations

import argparse
import os

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


def on_page_markdown(markdown: str, page, config, files) -> str:
    """The generated reference in place of `cli.md`'s placeholder; other pages unchanged."""
    return cli_reference() if page.file.src_uri == "cli.md" else markdown
