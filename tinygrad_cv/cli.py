"""What the command-line programs share: argument types that name the bad value, and the user-error class.

``tinygrad-cv-train`` / ``tinygrad-cv-lenet`` (``train_demo.py``) and the
scripts in ``demos/`` parse their options with these, so a bad value is
refused by argparse with one line that says what was expected and what came::

    p.add_argument("--epochs", type=integer(1))                  # "must be at least 1, got 0"
    p.add_argument("--lr", type=real(0, low_open=True))          # "must be > 0, got -1"
    p.add_argument("--labels", type=number_list(integer(1), "--labels"))   # "1,10,100"

A :class:`UsageError` is a command that cannot run as given (a missing
folder, a checkpoint that does not fit): the programs print it in one line
and exit with status 2, where a bug keeps its traceback.
"""
from __future__ import annotations

import argparse
import math
import sys

__all__ = ["UsageError", "integer", "real", "number_list", "run_program"]


class UsageError(Exception):
    """A command that cannot run as given (not a bug): reported in one line, exit status 2."""


def integer(low):
    """argparse type: an int >= ``low``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def real(low, low_open=False, high=math.inf):
    """argparse type: a finite float >= ``low`` (> with ``low_open``) and <= ``high``."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and (value > low if low_open else value >= low) and value <= high):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low:g}"
                                             f"{'' if high == math.inf else f' and <= {high:g}'}, got {text}")
        return value

    return parse


def number_list(parse_one, what, unique=True):
    """argparse type: comma-separated values, each parsed by ``parse_one``; sorted and distinct when ``unique``."""

    def parse(text):
        values = []
        for part in text.split(","):
            try:
                values.append(parse_one(part.strip()))
            except argparse.ArgumentTypeError as e:
                raise argparse.ArgumentTypeError(f"{what}: {e}") from None
        if unique and len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{what}: a value is repeated in {text!r}")
        return sorted(values) if unique else values

    return parse


def run_program(parser, argv, run, user_errors):
    """Parse ``argv`` with ``parser`` and return ``run(args, argv_list)``, reporting user errors the programs' way.

    From the command line (``argv`` None) an exception in ``user_errors`` prints one line
    ``PROG: error: ...`` and exits with status 2, unless ``--debug`` asks for the traceback;
    called from Python with a list, the error is raised so that the caller can catch it.
    """
    args = parser.parse_args(argv)
    try:
        return run(args, sys.argv[1:] if argv is None else list(argv))
    except user_errors as e:
        if argv is not None or getattr(args, "debug", False):
            raise
        parser.exit(2, f"{parser.prog}: error: {e}\n")
