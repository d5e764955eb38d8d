"""`mnist-bench parity`: its options, and the handler that gets the pairs from the API
(`mnist_bench.parity`) and renders them."""

from __future__ import annotations

import argparse
import sys

from mnist_bench.commands import options
from mnist_bench.core import escape
from mnist_bench.render.parity import FORMATS, render_json, render_table
from mnist_bench.runfile import output

# The API's keywords, as this command's flags name them in messages.
FLAGS = {"skip_bad": "--skip-bad"}

EPILOG = """examples:
  mnist-bench run -v single-dense --seeds 0,1,2         every installed backend, three seeds
  mnist-bench parity results/runs/RUN.json               agreement per variant, backend x backend
  mnist-bench parity tf.json jax.json torch.json --format markdown
  mnist-bench report RUN.json --format html -o r.html    draws where the confusion matrices differ

exit codes: 0 ok; 2 a bad file (see --skip-bad), no record with predicted labels, or no job
run on two backends."""


# --format json: the keys, stable (a key is only ever added), as `--help` documents them.
JSON_KEYS = """--format json prints one object (keys are only ever added; non-finite numbers null):
  {command: parity, runs (the RUN arguments), files (the run files read), warnings, notes
  (what was left out, a line each), unlabelled, single (their counts), groups}
  groups, one per job run on two or more backends (seed aside): {title (as the table titles
    it), variant, dataset, devices {BACKEND: where it ran}, configuration (every field of the
    job but backend and seed), backends, seeds, class_names (or null), accuracy {BACKEND: mean
    test accuracy over its seeds}, spread (highest minus lowest), agreement {BACKEND:
    {BACKEND: mean agreement over the seeds both ran, 1 with itself, null where no seed is
    shared}}, pairs}
  pairs: {a, b, seeds (both ran), agreements (one per seed), mean, min, accuracy_a,
    accuracy_b (over those seeds), disagreeing (samples labelled differently), difference
    (confusion matrix of a minus that of b, rows truth), largest (the cells that differ
    most: [{truth, predicted, count}], class indices)}"""


# ------------------------------------------------------------------------------ the command
def add_parity(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG + "\n\n" + JSON_KEYS
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    options.add_runs(p)
    p.add_argument(
        "--format",
        choices=[*FORMATS, "json"],
        default="table",
        help="table (rich; plain ASCII when piped), markdown (GitHub tables) or json (one "
        "object, keys below)",
    )
    output.add_options(p, what="the comparison", note=" instead of standard output")
    options.add_skip_bad(p)


def cmd_parity(args: argparse.Namespace) -> int:
    warnings: list[str] = []

    def warn(message: str) -> None:
        print(f"mnist-bench parity: warning: {escape.terminal(message)}", file=sys.stderr)
        warnings.append(message)

    output.check_force(args, "output")
    if args.output:
        output.check(args.output, force=args.force, inputs=args.runs)
    from mnist_bench import api

    with api.as_command("parity", FLAGS):
        parity = api.parity(args.runs, skip_bad=args.skip_bad, warn=warn)
    if args.format == "table" and not args.output:
        from mnist_bench.core.console import make_console

        console = make_console()
        for item in render_table(parity, color=console.is_terminal):
            console.print(item, highlight=False)
        return 0
    if args.format == "json":
        text = render_json(parity, runs=args.runs, warnings=warnings)
    else:
        text = FORMATS[args.format](parity)
    if not args.output:
        sys.stdout.write(text)
        return 0
    inputs = [*args.runs, *(loaded.path for loaded in parity.runs)]
    output.write(args.output, text, force=args.force, inputs=inputs, what="parity")
    print(f"parity: {escape.terminal(args.output)}", file=sys.stderr)
    return 0
