"""Would McNemar's test on the stored predicted labels make a sound accuracy gate?

McNemar's exact test compares two models on the same test images: of the images exactly one of
them labels right, are both kinds equally common? This script applies it to every pair of
seeds of each row of a pool trained with nothing changed but the seed (the share of pairs it
flags is its false-alarm rate against seed-to-seed differences), and, given a second pool
(a condition of benchmarks/gate_eval.py), to every clean x condition pair of distinct seeds.

Usage (the pools gate_eval trains; docs/ci.md, "Why not McNemar"):
  python benchmarks/mcnemar_seeds.py POOLS/single-dense+two-dense-jax-1ep-alltr-allte-clean \
      [POOLS/...-label_noise=0.05] [--alpha 0.05]
"""

from __future__ import annotations

import argparse
import itertools
import sys


def correct_by_seed(folder: str) -> dict[str, dict[int, object]]:
    """variant -> seed -> boolean array (test image labelled right), from predicted labels."""
    import mnist_bench
    import numpy as np
    from mnist_bench.data import BUNDLED_MNIST
    from mnist_bench.runfile.records import unpack_labels

    truth = np.load(BUNDLED_MNIST)["y_test"]
    out: dict[str, dict[int, object]] = {}
    for r in mnist_bench.load(folder).records:
        if r.status == "ok" and r.predicted_labels and r.test_samples == len(truth):
            predicted = unpack_labels(r.predicted_labels, r.test_samples)
            out.setdefault(r.variant, {})[r.seed] = predicted == truth
    return out


def mcnemar_p(a, b) -> tuple[float, int]:
    """McNemar's exact (binomial) two-sided p-value and the number of discordant images."""
    from scipy import stats

    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    return (stats.binomtest(only_a, n, 0.5).pvalue if n else 1.0), n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("clean", help="a pool of seeds with nothing changed")
    p.add_argument("condition", nargs="?", help="a pool of the same jobs with a change")
    p.add_argument("--alpha", type=float, default=0.05)
    args = p.parse_args(argv)
    from mnist_bench.core.errors import UserError

    try:
        clean = correct_by_seed(args.clean)
        other = correct_by_seed(args.condition) if args.condition else {}
    except UserError as exc:
        print(f"mcnemar_seeds: error: {exc}", file=sys.stderr)
        return 2
    if not clean:
        print(
            f"mcnemar_seeds: error: no record with predicted labels in {args.clean}",
            file=sys.stderr,
        )
        return 2
    for variant, seeds in sorted(clean.items()):
        pairs = [mcnemar_p(seeds[a], seeds[b]) for a, b in itertools.combinations(sorted(seeds), 2)]
        flagged = sum(p < args.alpha for p, _ in pairs) / len(pairs)
        discordant = sorted(n for _, n in pairs)[len(pairs) // 2]
        print(
            f"{variant}: {len(seeds)} clean seeds, {len(pairs)} pairs, median {discordant} "
            f"discordant images; McNemar p<{args.alpha:g} in {flagged:.2f} of pairs"
        )
        if variant in other:
            mixed = [
                mcnemar_p(seeds[a], other[variant][b])[0]
                for a in seeds
                for b in other[variant]
                if a != b
            ]
            share = sum(p < args.alpha for p in mixed) / len(mixed)
            print(f"  clean x condition: {len(mixed)} pairs, p<{args.alpha:g} in {share:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
