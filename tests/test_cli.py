"""The command-line argument types: values accepted, and refusals that name what was expected and what came."""
import argparse

import pytest

from tinygrad_cv.cli import integer, number_list, real


def test_integer():
    assert integer(1)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be at least 1, got 0"):
        integer(1)("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected an integer, got '2.5'"):
        integer(0)("2.5")


def test_real():
    assert real(0)("0") == 0.0 and real(0, high=1)("1") == 1.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be > 0, got 0"):
        real(0, low_open=True)("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be >= 0 and <= 1, got 1.5"):
        real(0, high=1)("1.5")
    for bad in ("nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            real(0)(bad)


def test_number_list():
    assert number_list(integer(1), "--labels")("100, 1,10") == [1, 10, 100]
    assert number_list(integer(1), "--hidden", unique=False)("300,300") == [300, 300]
    with pytest.raises(argparse.ArgumentTypeError, match=r"--labels: a value is repeated in '1,1'"):
        number_list(integer(1), "--labels")("1,1")
    with pytest.raises(argparse.ArgumentTypeError, match=r"--labels: must be at least 1, got 0"):
        number_list(integer(1), "--labels")("0,5")


def test_one_program_parses_with_them():
    p = argparse.ArgumentParser(prog="x", exit_on_error=False)
    p.add_argument("--lr", type=real(0, low_open=True))
    with pytest.raises(argparse.ArgumentError, match=r"must be > 0, got -1"):
        p.parse_args(["--lr", "-1"])
