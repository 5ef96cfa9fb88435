"""Autograders for Chapter 11a: generalisation — early stopping and a stratified train/validation split."""
from __future__ import annotations

import numpy as np

from ._grader import _run


# =====================================================================================================
# Chapter 11a: early stopping
# =====================================================================================================
def _early_stopping(losses, patience, ties_improve=False, late=0, best_of_all=False):
    """The rule (all flags off) and the usual ways to get it wrong (a flag on), for the hints."""
    best, best_epoch, waited = np.inf, 0, 0
    for epoch, loss in enumerate(losses, 1):
        if loss < best or (ties_improve and loss == best):
            best, best_epoch, waited = loss, epoch, 0
        else:
            waited += 1
            if waited == patience + late:
                break
    else:
        epoch = len(losses)
    if best_of_all:
        best_epoch = int(np.argmin(losses)) + 1
    return best_epoch, epoch


_EARLY_STOPPING_HINTS = [
    (dict(best_of_all=True), "the epochs after the stop were never trained: the best epoch is the best among "
                             "epochs 1 to stop_epoch, not the minimum of the whole list."),
    (dict(ties_improve=True), "a tie is not an improvement: the loss must be strictly lower than the best so far, "
                              "so the first epoch with the lowest loss stays the best and the count goes on."),
    (dict(late=1), "you stop one epoch late: stop after the epoch that makes `patience` epochs in a row without "
                   "a new best (with patience 1, right after the first epoch that does not improve)."),
    (dict(late=-1), "you stop one epoch early: `patience` epochs without a new best are allowed, the stop comes "
                    "after the last of them."),
]


def check_early_stopping(early_stopping):
    r"""Chapter 11a: ``early_stopping(val_losses, patience)`` → ``(best_epoch, stop_epoch)``, epochs from 1.

    Training stops after the epoch that makes ``patience`` epochs in a row
    without a loss strictly lower than the best so far, or after the last
    epoch; the best epoch is the first one with the lowest loss among the
    epochs trained (those up to the stop). ``val_losses`` is a list or a
    NumPy array, and must not be changed.
    """
    def case(losses, patience):
        given = np.array(losses, dtype=np.float64) if isinstance(losses, np.ndarray) else list(losses)
        want = _early_stopping(list(losses), patience)
        got = early_stopping(given, patience)
        shown = np.round(np.asarray(losses, dtype=np.float64), 4).tolist()
        shown = shown if len(shown) <= 12 else f"{shown[:12]} ... ({len(shown)} epochs)"
        where = f"for val_losses {shown} and patience {patience}"
        try:
            pair = tuple(got)
            ok = len(pair) == 2 and all(int(v) == v for v in pair)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            return f"{where} you returned {got!r}; expected a pair of epoch numbers (best_epoch, stop_epoch)"
        pair = tuple(int(v) for v in pair)
        if not np.array_equal(np.asarray(given, dtype=np.float64), np.asarray(losses, dtype=np.float64)):
            return f"{where}: your function changed val_losses (sort a copy, if you must sort)"
        if pair != want:
            message = f"{where} you returned {pair}, expected {want}."
            if pair == (want[0] - 1, want[1] - 1) or pair == (want[0] - 1, want[1]):
                return message + " Hint: epochs are counted from 1."
            for flags, hint in _EARLY_STOPPING_HINTS:
                if _early_stopping(list(losses), patience, **flags) == pair:
                    return message + " Hint: " + hint
            return message

    rng = np.random.default_rng(111)

    def random_runs():
        for _ in range(300):
            n = int(rng.integers(1, 60))
            t = np.linspace(0, 1, n)
            curve = 0.5 + 2 * (t - rng.uniform(0.2, 0.9)) ** 2 + rng.normal(0, 0.03, n)   # a noisy U
            losses = np.round(curve, 2)                                                    # ties happen
            problem = case(losses, int(rng.integers(1, 9)))
            if problem:
                return problem

    return _run("early_stopping", [
        ("a loss that keeps falling", lambda: case([5.0, 4.0, 3.0, 2.0, 1.0], 2)),
        ("a lower loss after the stop does not count", lambda: case([1.0, 0.8, 0.9, 0.85, 0.95, 0.5], 3)),
        ("patience counted right", lambda: case([1.0, 2.0, 3.0, 4.0, 5.0], 3) or case([3.0, 2.0, 2.5, 1.0], 1)),
        ("a tie is not an improvement", lambda: case([1.0, 0.7, 0.7, 0.7, 0.6], 2)),
        ("a single epoch", lambda: case([0.5], 5)),
        ("300 random noisy runs, as NumPy arrays", random_runs),
    ])


# =====================================================================================================
# Chapter 11a: a stratified train/validation split
# =====================================================================================================
def check_train_val_split(train_val_split):
    r"""Chapter 11a: ``train_val_split(labels, val_fraction, seed)`` → ``(train_idx, val_idx)``.

    Two integer index arrays that together hold every index of ``labels``
    exactly once; each class sends ``val_fraction`` times its count to
    validation (rounded either way); which examples go is random (drawn
    from ``seed``: the same seed, the same split; other seeds, other
    splits). ``labels`` must not be changed.
    """
    sorted_labels = np.repeat(np.arange(3), [50, 30, 20])                  # as a file sorted by class
    rng = np.random.default_rng(112)
    mixed_labels = rng.permutation(np.repeat(np.arange(5), [7, 13, 40, 3, 37]))
    cases = [(sorted_labels, 0.2), (mixed_labels, 0.25), (mixed_labels, 0.5)]

    def split(labels, fraction, seed):
        given = labels.copy()
        got = train_val_split(given, fraction, seed)
        if not np.array_equal(given, labels):
            return None, "your function changed `labels`"
        try:
            train_idx, val_idx = got
            train_idx, val_idx = np.asarray(train_idx), np.asarray(val_idx)
        except (TypeError, ValueError):
            return None, f"returned {type(got).__name__}; expected a pair (train_idx, val_idx) of index arrays"
        for name, idx in (("train_idx", train_idx), ("val_idx", val_idx)):
            if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
                return None, (f"{name} has dtype {idx.dtype} and shape {idx.shape}; expected a 1-D array of integer "
                              "indices (not a boolean mask)")
        return (train_idx, val_idx), None

    def partition():
        for labels, fraction in cases:
            got, problem = split(labels, fraction, 0)
            if problem:
                return problem
            train_idx, val_idx = got
            n = len(labels)
            where = f"(labels of {n} examples, val_fraction {fraction}, seed 0)"
            for name, idx in (("train_idx", train_idx), ("val_idx", val_idx)):
                values, counts = np.unique(idx, return_counts=True)
                if np.any(counts > 1):
                    return f"index {values[counts > 1][0]} appears {counts[counts > 1][0]} times in {name} {where}"
                if idx.size and (idx.min() < 0 or idx.max() >= n):
                    return f"{name} holds index {idx.min() if idx.min() < 0 else idx.max()}, outside 0..{n - 1} {where}"
            both = np.intersect1d(train_idx, val_idx)
            if both.size:
                return (f"{both.size} indices are in both sets, e.g. {both[0]} {where}: a validation example must "
                        "never be trained on")
            missing = np.setdiff1d(np.arange(n), np.concatenate([train_idx, val_idx]))
            if missing.size:
                return f"{missing.size} indices are in neither set, e.g. {missing[0]} {where}"

    def proportions():
        for labels, fraction in cases:
            for seed in range(20):
                got, problem = split(labels, fraction, seed)
                if problem:
                    return problem
                val_idx = got[1]
                for c, count in zip(*np.unique(labels, return_counts=True)):
                    sent = int(np.sum(labels[val_idx] == c))
                    if abs(sent - fraction * count) >= 1:
                        return (f"class {c} has {count} examples; with val_fraction {fraction} it should send "
                                f"{fraction * count:g} to validation (rounded up or down if that is not a whole "
                                f"number), it sent {sent} "
                                f"(seed {seed}). Hint: a random permutation of all the indices does not keep the "
                                "proportions: split each class separately.")

    def reproducible():
        for labels, fraction in cases:
            first, problem = split(labels, fraction, 5)
            if problem:
                return problem
            again, problem = split(labels, fraction, 5)
            if problem:
                return problem
            if not np.array_equal(np.sort(first[1]), np.sort(again[1])):
                return ("two calls with seed 5 gave different validation sets. Hint: draw from "
                        "np.random.default_rng(seed), not from the global generator.")

    def random():
        labels, fraction = cases[0]
        seeds = 200
        times = np.zeros(len(labels))
        for seed in range(seeds):
            got, problem = split(labels, fraction, seed)
            if problem:
                return problem
            times[got[1]] += 1
        if times.max() == seeds or times.min() == 0:
            i = int(np.argmax(times)) if times.max() == seeds else int(np.argmin(times))
            return (f"over {seeds} seeds, example {i} (class {labels[i]}) was in the validation set {int(times[i])} "
                    f"times: the split does not depend on the seed, or not for every example. Hint: shuffle each "
                    "class's indices with np.random.default_rng(seed) before taking its share.")
        expected = fraction * seeds
        if times.min() < expected / 4 or times.max() > min(seeds, 3 * expected):
            i = int(np.argmin(times)) if times.min() < expected / 4 else int(np.argmax(times))
            return (f"over {seeds} seeds, example {i} was in the validation set {int(times[i])} times, expected about "
                    f"{expected:g}: every example of a class should be equally likely to be chosen")

    return _run("train_val_split", [
        ("every index exactly once", partition),
        ("each class's share in validation", proportions),
        ("the same seed, the same split", reproducible),
        ("a random choice within each class", random),
    ])
