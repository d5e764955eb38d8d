"""How often the accuracy gate fails for real training bugs and for harmless changes.

Method (pool and resample): each condition (clean, each injected bug, each harmless change)
is trained ONCE over a pool of seeds 0..P-1 of the gate's jobs (MNIST_BENCH_INJECT_BUG set in
the workers; the pools are run files kept in --pools and reused; a pool asked to grow trains
only its missing seeds). P is --pool-seeds, or the condition's own `@P` (`unscaled@8`,
`clean@24`): a bug far beyond the gate's reach needs few seeds to show it, a condition near
the threshold needs many. A gate run is then drawn by resampling: G seeds of the condition's
pool for the gate run, then B seeds of the clean pool outside those G for the baseline, so
the two sides never share a seed (a shared seed would pair their initialisations); the clean
pool holds at least B + G seeds. The share of draws the gate fails is its power for a bug,
its false-alarm rate for a harmless change (an A/A test with real, different training, not a
bit-identical rerun). Draws from one pool overlap, so the shares are bootstrap estimates
whose precision is set by the pools' sizes, not by --draws.

A condition `shift=D` (or `shift=D:VARIANT`) trains nothing: it is the clean pool with every
seed's accuracy (of that variant's rows) lowered by D, the bug the power analysis assumes,
with the real seeds' spreads: the measured power for a drop of exactly D.

Rules applied to every draw:
- check: `mnist-bench check`'s own rule, through `analyse.compare` (a row fails when its mean
  accuracy falls by more than 0.005 and Welch's two-sided test at 95% agrees);
- pooled: one one-sided t-test of the mean drop over all rows at --alpha (several, comma-
  separated: columns for each, `pooled@A`; `pooled` is the first)
  (`analyse.power.pooled_drop_test`);
- pooled+spread: pooled, or a row whose spread across seeds is significantly wider than the
  baseline's (one-sided Brown-Forsythe, Bonferroni over rows at the same alpha;
  `analyse.power.wider_spreads`);
- pooled+spread+rank: pooled+spread, or a row whose seeds rank significantly lower than the
  baseline's (one-sided exact Mann-Whitney, Bonferroni over rows at the same alpha;
  `analyse.power.lower_ranks`): `check --pooled-alpha A`'s rule;
- pooled+F (with --f-test): pooled with a one-sided F-test of the variances instead of
  Brown-Forsythe (for comparison: not robust to two-dense's heavy tail).

Usage (small, to prove it works):
  python benchmarks/gate_eval.py --pool-seeds 4 --base-seeds 2 --gate-seeds 2 \
      --conditions clean,label_noise=0.3 --train-limit 6000 --test-limit 2000
Full (suites/gate.toml's jobs, its 6 seeds against a 16-seed baseline; docs/ci.md):
  python benchmarks/gate_eval.py --base-seeds 16 --gate-seeds 6 --conditions \
      "clean@24,seed_offset=1000@16,..." --variants single-dense,two-dense --backends jax \
      --epochs 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
from pathlib import Path

CONDITIONS = (
    "clean",
    "seed_offset=1000",
    "permute_train",
    "label_noise=0.05",
    "label_noise=0.1",
    "drop_train=0.5",
    "unscaled",
    "lr_scale=10",
    "lr_scale=0.1",
    "no_shuffle",
    "freeze=0",
    "loss_sum",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--variants", default="single-dense,two-dense")
    p.add_argument("--backends", default="jax")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--pool-seeds", type=int, default=16)
    p.add_argument("--base-seeds", type=int, default=8)
    p.add_argument("--gate-seeds", type=int, default=8)
    p.add_argument(
        "--conditions", default=",".join(CONDITIONS), help="semicolon- or comma-separated"
    )
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument(
        "--alpha", default="0.01", help="the pooled rule's one-sided alpha (or several: 0.01,0.001)"
    )
    p.add_argument("--pools", default="results/gate-pools", help="where the pool run files live")
    p.add_argument(
        "--f-test", action="store_true", help="also a column with an F-test as the spread test"
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.add_argument("--markdown", action="store_true", help="a Markdown table (docs/ci.md's)")
    args = p.parse_args(argv)
    try:
        args.alphas = [float(a) for a in args.alpha.split(",")]
    except ValueError:
        p.error(f"--alpha: numbers between 0 and 1, comma-separated, not {args.alpha!r}")
    if not all(0 < a < 1 for a in args.alphas):
        p.error(f"--alpha: numbers between 0 and 1, comma-separated, not {args.alpha!r}")
    if args.base_seeds < 2 or args.gate_seeds < 2:
        p.error("--base-seeds and --gate-seeds must be 2 or more (a t-test needs a spread)")
    return args


def conditions(text: str) -> list[str]:
    """`clean,label_noise=0.05,lr_scale=10`: one condition each (a condition of several
    changes joins them with `+`: `label_noise=0.05+no_shuffle`; `@P` sets its pool's size)."""
    out = [c.strip() for c in text.replace(";", ",").split(",") if c.strip()]
    if not any(split_size(c)[0] == "clean" for c in out):
        out.insert(0, "clean")
    return out


def split_size(condition: str, default: int | None = None) -> tuple[str, int | None]:
    """`unscaled@8` -> ("unscaled", 8); `unscaled` -> ("unscaled", default).

    Raises:
        ValueError: a size that is not a whole number of 2 or more.
    """
    name, at, size = condition.partition("@")
    if not at:
        return name, default
    if not size.isdigit() or int(size) < 2:
        raise ValueError(f"{condition!r}: the pool size after @ must be a whole number, 2 or more")
    return name, int(size)


def check_sizes(sizes: dict[str, int], args: argparse.Namespace) -> None:
    """The clean pool must hold both sides of a draw, every other pool a gate run.

    Raises:
        ValueError: a pool too small for the draw.
    """
    if sizes["clean"] < args.base_seeds + args.gate_seeds:
        raise ValueError(
            f"the clean pool ({sizes['clean']} seeds) must hold --base-seeds + --gate-seeds "
            f"({args.base_seeds + args.gate_seeds}): the two sides never share a seed"
        )
    for name, size in sizes.items():
        if size < args.gate_seeds:
            raise ValueError(f"{name}: a pool of {size} seeds cannot give {args.gate_seeds}")


def pool(condition: str, size: int, args: argparse.Namespace):
    """The condition's records over seeds 0..size-1: trained once, then read from --pools (a
    pool asked to grow trains only the seeds it lacks)."""
    import mnist_bench
    from mnist_bench.execute import inject

    folder = Path(args.pools) / "-".join(
        [args.variants.replace(",", "+"), args.backends.replace(",", "+"), f"{args.epochs}ep",
         f"{args.train_limit or 'all'}tr", f"{args.test_limit or 'all'}te", condition]
    )  # fmt: skip
    have: list = []
    if folder.is_dir() and any(folder.glob("*.json")):
        have = [r for r in mnist_bench.load(folder).records if r.seed < size]
    done = {r.seed for r in have}  # a job that failed or diverged is a result, not retried
    missing = [s for s in range(size) if s not in done]
    if not missing:  # a bigger pool serves a smaller one: its first seeds
        return have
    spec = "" if condition == "clean" else condition.replace("+", ",")
    inject.parse(spec)  # a bad condition stops here, before any training
    saved = os.environ.get(inject.ENV)
    os.environ[inject.ENV] = spec
    try:
        print(f"gate_eval: training {condition} over {len(missing)} seed(s)", file=sys.stderr)
        mnist_bench.run(
            variants=args.variants.split(","),
            backends=args.backends.split(","),
            seeds=missing,
            epochs=args.epochs,
            train_limit=args.train_limit,
            test_limit=args.test_limit,
            results_dir=folder,
        )
    finally:
        if saved is None:
            os.environ.pop(inject.ENV, None)
        else:
            os.environ[inject.ENV] = saved
    return [r for r in mnist_bench.load(folder).records if r.seed < size]


def parse_shift(condition: str) -> tuple[float, str | None] | None:
    """`shift=0.005` -> (0.005, None): every row of the clean pool 0.5 points lower;
    `shift=0.005:two-dense` -> (0.005, "two-dense"): that variant's rows only. None: not a
    shift. A shift is the textbook bug the power analysis assumes (every seed moved alike),
    measured on the real seeds' spreads.

    Raises:
        ValueError: a shift that is not a number in (0, 1).
    """
    name, _, rest = condition.partition("=")
    if name != "shift":
        return None
    amount, _, variant = rest.partition(":")
    try:
        drop = float(amount)
    except ValueError:
        drop = math.nan
    if not 0 < drop < 1:
        raise ValueError(f"{condition!r}: a shift is a fraction of accuracy in (0, 1), e.g. 0.005")
    return drop, variant or None


def shifted(clean: list, drop: float, variant: str | None) -> list:
    """The clean pool's records with their accuracy lowered by `drop` (on `variant` only)."""
    return [
        dataclasses.replace(r, test_accuracy=r.test_accuracy - drop)
        if r.status == "ok" and variant in (None, r.variant)
        else r
        for r in clean
    ]


def row_key(record) -> tuple[str, str]:
    return record.variant, record.backend


def evaluate(pools: dict[str, list], args: argparse.Namespace) -> list[dict]:
    """Per condition: the measured change per row (pool mean minus the clean pool's mean) and
    the share of resampled gate runs each rule fails."""
    import numpy as np
    from mnist_bench.analyse.compare import compare, gate
    from mnist_bench.analyse.power import (
        lower_ranks,
        pooled_drop_test,
        variance_ratio_test,
        wider_spreads,
    )

    rng = np.random.default_rng(0)
    clean = [r for r in pools["clean"] if r.status == "ok"]
    keys = sorted({row_key(r) for r in clean})
    clean_seeds = sorted({r.seed for r in clean})
    out = []
    for condition, records in pools.items():
        ok = [r for r in records if r.status == "ok"]
        change = {}
        for key in keys:
            before = [r.test_accuracy for r in clean if row_key(r) == key]
            after = [r.test_accuracy for r in ok if row_key(r) == key]
            change["/".join(key)] = (
                statistics.fmean(after) - statistics.fmean(before) if after else None
            )
        failed = {"check": 0}
        for a in args.alphas:
            failed |= {rule: 0 for rule in rule_columns(args) if rule.endswith(f"@{a:g}")}
        by_seed = {}
        for r in ok:
            by_seed.setdefault(r.seed, []).append(r)
        clean_by_seed = {}
        for r in clean:
            clean_by_seed.setdefault(r.seed, []).append(r)
        seeds = sorted({r.seed for r in records})  # a seed that failed stays in the draw
        for _ in range(args.draws):
            new_seeds = rng.choice(seeds, args.gate_seeds, replace=False)
            others = [s for s in clean_seeds if s not in set(new_seeds.tolist())]
            base_seeds = rng.choice(others, args.base_seeds, replace=False)
            base = [r for s in base_seeds for r in clean_by_seed.get(int(s), [])]
            new = [r for s in new_seeds for r in by_seed.get(int(s), [])]
            # a job that failed or diverged fails `check` under either rule, as in CI
            if len({(row_key(r), r.seed) for r in new}) < len(keys) * len(new_seeds):
                for rule in failed:
                    failed[rule] += 1
                continue
            failed["check"] += bool(gate(compare(base, new)))
            values = [
                (
                    [r.test_accuracy for r in base if row_key(r) == key],
                    [r.test_accuracy for r in new if row_key(r) == key],
                )
                for key in keys
            ]
            _, p_value = pooled_drop_test(values)
            for a in args.alphas:
                pooled = p_value < a
                spread = pooled or bool(wider_spreads(values, a))
                failed[f"pooled@{a:g}"] += pooled
                failed[f"pooled+spread@{a:g}"] += spread
                failed[f"pooled+spread+rank@{a:g}"] += spread or bool(lower_ranks(values, a))
                if args.f_test:
                    failed[f"pooled+F@{a:g}"] += pooled or bool(
                        wider_spreads(values, a, test=variance_ratio_test)
                    )
        out.append(
            {
                "condition": condition,
                "harmless": condition == "clean"
                or all(
                    part.split("=")[0] in ("permute_train", "seed_offset")
                    for part in condition.split("+")
                ),
                "change": change,
                "pool_seeds": len(seeds),
                "failed_records": len(records) - len(ok),
                "fail_rate": {
                    "pooled": failed[f"pooled@{args.alphas[0]:g}"] / args.draws,
                    **{rule: n / args.draws for rule, n in failed.items()},
                },
            }
        )
    return out


def rule_columns(args: argparse.Namespace) -> list[str]:
    """The pooled rules' columns, per alpha: the t-test alone, with the Brown-Forsythe spread
    test, with the spread and the rank test (`check --pooled-alpha`'s rule), and with
    --f-test an F-test on the variances instead of Brown-Forsythe."""
    rules = ["pooled", "pooled+spread", "pooled+spread+rank"] + (
        ["pooled+F"] if args.f_test else []
    )
    return [f"{rule}@{a:g}" for a in args.alphas for rule in rules]


def render(rows: list[dict], args: argparse.Namespace) -> str:
    keys = list(rows[0]["change"])
    pooled = rule_columns(args)
    head = f"{'condition':<22} {'kind':<8} {'seeds':>5} " + " ".join(f"{k:>20}" for k in keys)
    head += f" {'check fails':>11} " + " ".join(f"{r.replace('@', ' fails @'):>24}" for r in pooled)
    lines = [
        f"pools of {args.pool_seeds} seeds unless @P; {args.draws} gate runs drawn per condition, "
        f"baseline {args.base_seeds} seeds vs gate {args.gate_seeds}; pooled rule one-sided "
        f"at each alpha; change in accuracy points",
        head,
    ]
    for row in rows:
        cells = " ".join(
            f"{'-' if v is None else f'{100 * v:+.2f}':>20}" for v in row["change"].values()
        )
        kind = "harmless" if row["harmless"] else "bug"
        rate = row["fail_rate"]
        rates = f"{rate['check']:>11.3f} " + " ".join(f"{rate[r]:>24.3f}" for r in pooled)
        lines.append(f"{row['condition']:<22} {kind:<8} {row['pool_seeds']:>5} {cells} {rates}")
    return "\n".join(lines) + "\n"


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    """The table of docs/ci.md: one row per condition, the change in points per row of the
    gate and the share of draws each rule fails."""
    keys = list(rows[0]["change"])
    pooled = rule_columns(args)
    head = ["condition", "kind", "pool seeds", *keys, "jobs failed", "`check` fails"]
    head += [f"{r.replace('@', ' ')} fails" for r in pooled]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"`{row['condition']}`", "harmless" if row["harmless"] else "bug"]
        cells.append(str(row["pool_seeds"]))
        cells += ["-" if v is None else f"{100 * v:+.2f}" for v in row["change"].values()]
        cells.append(str(row["failed_records"]))
        cells += [f"{row['fail_rate'][r]:.3f}" for r in ("check", *pooled)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mnist_bench.execute import inject

    try:
        sizes = dict(split_size(c, args.pool_seeds) for c in conditions(args.conditions))
        for condition in sizes:  # every condition checked before any training
            if parse_shift(condition) is None:
                inject.parse("" if condition == "clean" else condition.replace("+", ","))
        check_sizes(sizes, args)  # type: ignore[arg-type]
        trained = [c for c in sizes if parse_shift(c) is None]
        pools = {c: pool(c, sizes[c], args) for c in trained}  # type: ignore[arg-type]
        for c in sizes:  # the clean pool's seeds, shifted: no training
            if c not in pools:
                pools[c] = shifted(pools["clean"], *parse_shift(c))  # type: ignore[misc]
        pools = {c: pools[c] for c in sizes}
    except ValueError as exc:
        print(f"gate_eval: error: {exc}", file=sys.stderr)
        return 2
    rows = evaluate(pools, args)
    if args.json:
        print(
            json.dumps(
                {"method": "pool-and-resample", "args": vars(args), "conditions": rows}, indent=2
            )
        )
    elif args.markdown:
        sys.stdout.write(markdown(rows, args))
    else:
        sys.stdout.write(render(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
