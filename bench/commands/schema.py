"""`mnist-bench schema`: print the run file's JSON Schema (`mnist_bench.runfile.schema`)."""

from __future__ import annotations

import argparse


def add_schema(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "validate a run file with any JSON Schema validator, e.g. "
        "`mnist-bench schema > run.schema.json; check-jsonschema --schemafile run.schema.json "
        "results/runs/RUN.json`"
    )


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from mnist_bench.runfile import schema

    print(json.dumps(schema.run_file_schema(), indent=2))
    return 0
