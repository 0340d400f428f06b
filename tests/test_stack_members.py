"""The cross-fitted weighting of scripts/stack_members.py: it finds the informative member, and
an image's score never depends on its own label."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from stack_members import cross_fitted_scores, fit_logistic  # noqa: E402


def _members(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(float)
    good = (2 * y - 1) * 2.0 + rng.normal(0, 1.0, n)  # informative member
    noise = rng.normal(0, 3.0, n)  # a member that knows nothing
    return np.stack([good, noise], 1), y


def test_logistic_weights_the_informative_member():
    x, y = _members()
    w = fit_logistic(x, y)
    assert w[0] > 1.0 and abs(w[1]) < 0.1 and abs(w[2]) < 0.3
    # The equal-weight mean is hurt by the noise member; the weighted one is not.
    mean_wrong = ((x.mean(1) > 0) != (y == 1)).sum()
    stack_wrong = ((cross_fitted_scores(x, y) > 0) != (y == 1)).sum()
    assert stack_wrong < mean_wrong


def test_cross_fitted_scores_never_see_their_own_labels():
    x, y = _members(500)
    folds, seed = 5, 3
    base = cross_fitted_scores(x, y, folds, seed)
    part = np.array_split(np.random.default_rng(seed).permutation(len(x)), folds)[0]
    flipped = y.copy()
    flipped[part] = 1 - flipped[part]
    again = cross_fitted_scores(x, flipped, folds, seed)
    assert np.array_equal(again[part], base[part])  # the fold's own labels changed nothing for it
    assert not np.allclose(np.delete(again, part), np.delete(base, part))  # but they did train the others
