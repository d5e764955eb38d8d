"""benchmarks/mcnemar_seeds.py's paired test (the numbers of docs/ci.md, "Why not McNemar")."""

from __future__ import annotations

import numpy as np
from conftest import benchmark

mcnemar = benchmark("mcnemar_seeds")


def test_mcnemar_counts_only_discordant_images():
    a = np.ones(1000, dtype=bool)
    assert mcnemar.mcnemar_p(a, a.copy()) == (1.0, 0)
    b = a.copy()
    b[:40] = False  # 40 images only a gets right, and 10 only b
    a[40:50] = False
    p, n = mcnemar.mcnemar_p(a, b)
    assert n == 50 and p < 1e-4  # binomial(40 of 50, 1/2), two-sided
    p_even, _ = mcnemar.mcnemar_p(b, b[::-1].copy())
    assert p_even == 1.0  # as many each way


def test_no_run_file_is_exit_2(tmp_path, capsys):
    assert mcnemar.main([str(tmp_path)]) == 2
    assert "mcnemar_seeds: error:" in capsys.readouterr().err
