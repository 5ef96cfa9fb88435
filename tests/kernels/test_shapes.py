"""Shape helpers: PyTorch's output-size formulas and the validators' messages."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_cv.kernels import shapes


def test_pair_and_padding_normalisation():
    assert shapes.pair(3, "k") == (3, 3)
    assert shapes.pair((2, 5), "k") == (2, 5)
    assert shapes.pair([1, 2], "k") == (1, 2)
    with pytest.raises(ValueError, match=r"stride.*\(1, 2, 3\)"):
        shapes.pair((1, 2, 3), "stride")
    with pytest.raises(TypeError, match="stride"):
        shapes.pair(1.5, "stride")
    with pytest.raises(TypeError):
        shapes.pair(True, "stride")
    assert shapes.normalize_padding(1) == (1, 1, 1, 1)
    assert shapes.normalize_padding((1, 2)) == (1, 1, 2, 2)
    assert shapes.normalize_padding((0, 1, 2, 3)) == (0, 1, 2, 3)
    with pytest.raises(ValueError, match=r"non-negative.*-1"):
        shapes.normalize_padding((0, -1))
    with pytest.raises(ValueError, match="resolve"):
        shapes.normalize_padding("same")


def test_resolve_padding_same_and_valid():
    assert shapes.resolve_padding("valid", 3) == (0, 0, 0, 0)
    assert shapes.resolve_padding("same", 3) == (1, 1, 1, 1)
    # even kernels: the extra row/column goes at the bottom/right (PyTorch)
    assert shapes.resolve_padding("same", (4, 2)) == (1, 2, 0, 1)
    assert shapes.resolve_padding("same", 3, dilation=2) == (2, 2, 2, 2)
    assert shapes.resolve_padding("same", 2, dilation=3) == (1, 2, 1, 2)
    with pytest.raises(ValueError, match=r"stride 1.*\(2, 2\)"):
        shapes.resolve_padding("same", 3, stride=2)
    with pytest.raises(ValueError, match="'full'"):
        shapes.resolve_padding("full", 3)
    assert shapes.resolve_padding((1, 2), 3) == (1, 1, 2, 2)


def _conv_out_bruteforce(n, k, s, lo, hi, d):
    """Count window starts i*s such that the dilated window fits in the padded input."""
    return sum(1 for start in range(0, n + lo + hi) if start % s == 0 and start + d * (k - 1) < n + lo + hi)


@settings(deadline=None, max_examples=200)
@given(n=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 4), lo=st.integers(0, 3),
       hi=st.integers(0, 3), d=st.integers(1, 3))
def test_conv2d_output_size_counts_windows(n, k, s, lo, hi, d):
    expected = _conv_out_bruteforce(n, k, s, lo, hi, d)
    if expected == 0:
        with pytest.raises(ValueError, match="kernel larger than padded input"):
            shapes.conv2d_output_size((n, 1), (k, 1), (s, 1), (lo, hi, 0, 0), (d, 1))
    else:
        assert shapes.conv2d_output_size((n, 1), (k, 1), (s, 1), (lo, hi, 0, 0), (d, 1))[0] == expected


@settings(deadline=None, max_examples=200)
@given(n=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 4), p=st.integers(0, 2),
       d=st.integers(1, 3), op=st.integers(0, 3))
def test_conv_transpose2d_output_size_inverts_conv(n, k, s, p, d, op):
    """A conv2d with the same arguments maps the transposed output size back to n."""
    if not (op < s or op < d):
        with pytest.raises(ValueError, match="output padding must be smaller"):
            shapes.conv_transpose2d_output_size((n, n), k, s, p, op, d)
        return
    out = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
    if out < 1:
        with pytest.raises(ValueError, match="too small"):
            shapes.conv_transpose2d_output_size((n, n), k, s, p, op, d)
        return
    assert shapes.conv_transpose2d_output_size((n, n), k, s, p, op, d) == (out, out)
    if op < s:
        assert shapes.conv2d_output_size((out, out), k, s, p, d) == (n, n)


def _pool_out_spelled(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape, spelled with math.floor / math.ceil."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else math.floor(span / s)) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


@settings(deadline=None, max_examples=300)
@given(n=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 4), p=st.integers(0, 2),
       d=st.integers(1, 2), ceil_mode=st.booleans())
def test_pool2d_output_size_matches_pytorch_formula(n, k, s, p, d, ceil_mode):
    expected = _pool_out_spelled(n, k, s, p, d, ceil_mode)
    if expected < 1:
        with pytest.raises(ValueError, match="too small"):
            shapes.pool2d_output_size((n, n), k, s, p, d, ceil_mode)
    else:
        assert shapes.pool2d_output_size((n, n), k, s, p, d, ceil_mode) == (expected, expected)


def test_pool2d_output_size_known_values():
    # values checked against torch.nn.functional.max_pool2d
    assert shapes.pool2d_output_size((5, 5), 2, 2, 0, 1, False) == (2, 2)
    assert shapes.pool2d_output_size((5, 5), 2, 2, 0, 1, True) == (3, 3)
    # ceil_mode would add a window starting in the right padding: dropped
    assert shapes.pool2d_output_size((4, 4), 2, 2, 1, 1, True) == (3, 3)
    assert shapes.pool2d_output_size((6, 6), 3, 3, 1, 1, True) == (3, 3)
    assert shapes.pool2d_output_size((5, 5), 2, None, 0, 1, False) == (2, 2)  # stride defaults to kernel


def test_validators_name_the_numbers():
    with pytest.raises(ValueError, match=r"\(3 x 3\).*\(5 x 5\)"):
        shapes.check_conv2d((1, 1, 3, 3), (1, 1, 5, 5), None, 1, 0, 1, 1)
    with pytest.raises(ValueError, match=r"in_channels=5 is not divisible by groups=2"):
        shapes.check_conv2d((1, 5, 8, 8), (4, 2, 3, 3), None, 1, 0, 1, 2)
    with pytest.raises(ValueError, match=r"out_channels=3.*groups=2"):
        shapes.check_conv2d((1, 4, 8, 8), (3, 2, 3, 3), None, 1, 0, 1, 2)
    with pytest.raises(ValueError, match=r"groups must be >= 1, got groups=0"):
        shapes.check_conv2d((1, 4, 8, 8), (4, 4, 3, 3), None, 1, 0, 1, 0)
    with pytest.raises(ValueError, match=r"expects input with 4 channels.*has 6 channels"):
        shapes.check_conv2d((1, 6, 8, 8), (4, 2, 3, 3), None, 1, 0, 1, 2)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\).*\(3,\)"):
        shapes.check_conv2d((1, 2, 8, 8), (4, 2, 3, 3), (3,), 1, 0, 1, 1)
    with pytest.raises(ValueError, match=r"stride must be >= 1.*\(1, 0\)"):
        shapes.check_conv2d((1, 2, 8, 8), (4, 2, 3, 3), None, (1, 0), 0, 1, 1)
    with pytest.raises(ValueError, match=r"dilation must be >= 1.*\(0, 0\)"):
        shapes.check_conv2d((1, 2, 8, 8), (4, 2, 3, 3), None, 1, 0, 0, 1)
    with pytest.raises(ValueError, match=r"4-D.*\(2, 8, 8\)"):
        shapes.check_conv2d((2, 8, 8), (4, 2, 3, 3), None, 1, 0, 1, 1)
    with pytest.raises(ValueError, match=r"weight must be 4-D.*\(4, 2, 3\)"):
        shapes.check_conv2d((1, 2, 8, 8), (4, 2, 3), None, 1, 0, 1, 1)
    with pytest.raises(ValueError, match=r"output padding must be smaller.*\(2, 0\).*\(2, 2\).*\(1, 1\)"):
        shapes.check_conv_transpose2d((1, 2, 4, 4), (2, 3, 3, 3), None, 2, 0, (2, 0), 1, 1)
    with pytest.raises(ValueError, match=r"pad should be at most half of kernel size.*\(2, 0\).*\(3, 3\)"):
        shapes.check_pool2d((1, 1, 8, 8), 3, 1, (2, 0))
    with pytest.raises(ValueError, match=r"padding must be non-negative.*\(-1, 0\)"):
        shapes.check_pool2d((1, 1, 8, 8), 3, 1, (-1, 0))
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(4, 5\)"):
        shapes.check_matmul((2, 3), (4, 5))
