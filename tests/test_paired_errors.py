"""The exact McNemar test of scripts/paired_errors.py, on values worked by hand."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from paired_errors import mcnemar_exact  # noqa: E402


def test_mcnemar_exact_known_values():
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)  # all six discordant pairs one way
    assert mcnemar_exact(9, 1) == pytest.approx(2 * (1 + 10) / 1024)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(57, 35) == pytest.approx(0.028017, abs=1e-6)  # scipy.stats.binomtest(57, 92)


def test_cifar_class_from_cifake_names():
    from paired_errors import cifar_class

    assert cifar_class("train/REAL/1234.jpg") == "airplane"  # no suffix: class 1
    assert cifar_class("train/FAKE/77 (4).jpg") == "cat"
    assert cifar_class("train/FAKE/5 (10).jpg") == "truck"


def test_by_class_table_counts_mistakes_per_class_and_label():
    import numpy as np
    from paired_errors import by_class_table

    paths = ["a/1.jpg", "a/2.jpg", "a/3 (4).jpg", "a/4 (4).jpg", "a/5 (4).jpg"]
    labels = np.array([0, 1, 0, 1, 1])
    wrong = np.array([True, False, False, True, True])
    rows = by_class_table(paths, labels, wrong)
    assert rows[2:] == ["| airplane | 1 / 1 | 0 / 1 |", "| cat | 0 / 1 | 2 / 2 |"]
