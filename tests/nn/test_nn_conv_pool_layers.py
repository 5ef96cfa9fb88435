"""Conv and pooling layers: wiring of the layer arguments into F.conv2d & co., padding modes, gradients.

The kernels themselves are tested in tests/ops; here a direct NumPy
convolution is the oracle for the layer's output. Skipped until the
functional conv/pool operations exist.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import distinct_array, floats_array, tensors

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import gradcheck, nn

pytestmark = pytest.mark.skipif(
    not all(hasattr(F, name) for name in ("conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d")),
    reason="F.conv2d / F.conv_transpose2d / F.max_pool2d / F.avg_pool2d not available yet",
)


def conv2d_direct(x, w, b, stride, pad4, dilation, groups):
    """u[n,o,i,j] = b[o] + Σ_{c in o's group} Σ_{p,q} xpad[n, c, i·s + p·d, j·s + q·d] · w[o, c, p, q]."""
    t, bot, l, r = pad4
    xp = np.pad(x, ((0, 0), (0, 0), (t, bot), (l, r)))
    n, c, hp, wp = xp.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(oh):
            for j in range(ow):
                patch = xs[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
                out[:, oc, i, j] = np.einsum("ncpq,cpq->n", patch, w[oc])
        if b is not None:
            out[:, oc] += b[oc]
    return out


@settings(max_examples=12)
@given(data=st.data(), groups=st.sampled_from([1, 2]), k=st.sampled_from([1, 2, 3]), stride=st.sampled_from([1, 2]),
       padding=st.sampled_from([0, 1, (1, 0)]), dilation=st.sampled_from([1, 2]), bias=st.booleans())
def test_conv2d_layer(data, groups, k, stride, padding, dilation, bias):
    tg.manual_seed(0)
    layer = nn.Conv2d(2, 2 * groups, k, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias,
                      dtype=tg.float64)
    x = data.draw(tensors(floats_array((2, 2, 6, 5))))
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    expected = conv2d_direct(np.asarray(x.data), layer.weight.data, layer.bias.data if bias else None,
                             (stride, stride), (ph, ph, pw, pw), (dilation, dilation), groups)
    np.testing.assert_allclose(layer(x).data, expected, rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda x, *p: layer(x), (x, *layer.parameters()))


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_conv2d_padding_modes(mode, np_mode, padding):
    tg.manual_seed(1)
    k = (3, 4) if padding == "same" else 3
    layer = nn.Conv2d(2, 3, k, padding=padding, padding_mode=mode, dtype=tg.float64)
    x = tg.randn(2, 2, 5, 6, dtype=tg.float64, requires_grad=True)
    if padding == "same":
        pad4 = (1, 1, 1, 2)  # kernel 4 wide: total 3, one before and two after, as PyTorch
    else:
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        pad4 = (ph, ph, pw, pw)
    xp = np.pad(x.data, ((0, 0), (0, 0), pad4[:2], pad4[2:]), mode=np_mode)
    expected = conv2d_direct(xp, layer.weight.data, layer.bias.data, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    y = layer(x)
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-12)
    if padding == "same":
        assert y.shape[-2:] == x.shape[-2:]
    small = tg.randn(1, 2, 3, 4, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, *p: layer(x), (small, *layer.parameters()))


def test_conv2d_same_and_valid_padding_and_errors():
    # float64 throughout this module: one set of compiled kernels instead of two
    x = tg.randn(1, 1, 7, 6, dtype=tg.float64)
    assert nn.Conv2d(1, 2, (4, 3), padding="same", dilation=2, dtype=tg.float64)(x).shape == (1, 2, 7, 6)
    assert nn.Conv2d(1, 2, 3, padding="valid", dtype=tg.float64)(x).shape == (1, 2, 5, 4)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(1, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="zeros"):
        nn.ConvTranspose2d(1, 1, 3, padding_mode="reflect")


@settings(max_examples=8)
@given(data=st.data(), stride=st.sampled_from([1, 2]), padding=st.sampled_from([0, 1]), groups=st.sampled_from([1, 2]))
def test_conv_transpose2d_layer(data, stride, padding, groups):
    tg.manual_seed(2)
    layer = nn.ConvTranspose2d(2, 2, 3, stride=stride, padding=padding, groups=groups, dtype=tg.float64)
    x = data.draw(tensors(floats_array((1, 2, 3, 2))))
    y = layer(x)
    assert y.shape == (1, 2, (3 - 1) * stride - 2 * padding + 3, (2 - 1) * stride - 2 * padding + 3)
    expected = F.conv_transpose2d(x, layer.weight, layer.bias, stride, padding, 0, groups, 1)
    np.testing.assert_array_equal(y.data, expected.data)
    assert gradcheck(lambda x, *p: layer(x), (x, *layer.parameters()))


def test_conv_transpose2d_output_size_inverts_strided_conv():
    down = nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=tg.float64)
    up = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, dtype=tg.float64)
    for size in (7, 8):  # both map to 4x4; output_size picks which one comes back
        x = tg.randn(1, 3, size, size, dtype=tg.float64)
        h = down(x)
        assert h.shape[-2:] == (4, 4)
        assert up(h, output_size=x.shape).shape == x.shape
        assert up(h, output_size=(size, size)).shape == x.shape
    with pytest.raises(ValueError, match="valid sizes range from 7 to 8"):
        up(tg.randn(1, 4, 4, 4, dtype=tg.float64), output_size=(9, 9))


@settings(max_examples=10)
@given(data=st.data(), k=st.sampled_from([2, 3]), stride=st.sampled_from([None, 1, 2]), padding=st.sampled_from([0, 1]),
       ceil_mode=st.booleans())
def test_pool_layers(data, k, stride, padding, ceil_mode):
    x = data.draw(tensors(distinct_array((1, 2, 5, 4))))
    mp = nn.MaxPool2d(k, stride, padding, ceil_mode=ceil_mode)
    ap = nn.AvgPool2d(k, stride, padding, ceil_mode=ceil_mode, count_include_pad=False)
    np.testing.assert_array_equal(mp(x).data, F.max_pool2d(x, k, stride, padding, ceil_mode=ceil_mode).data)
    np.testing.assert_array_equal(ap(x).data, F.avg_pool2d(x, k, stride, padding, ceil_mode, False).data)
    assert gradcheck(mp, (x,))
    assert gradcheck(ap, (x,))
    values, indices = nn.MaxPool2d(k, stride, padding, return_indices=True, ceil_mode=ceil_mode)(x)
    assert indices.dtype == np.int64 and values.shape == indices.shape


def test_max_pool_plain_values():
    x = tg.tensor(np.arange(16.0).reshape(1, 1, 4, 4), dtype=tg.float64)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).data, [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(nn.AvgPool2d(2)(x).data, [[[[2.5, 4.5], [10.5, 12.5]]]])
    np.testing.assert_array_equal(nn.AvgPool2d(2, divisor_override=1)(x).data, [[[[10, 18], [42, 50]]]])


def test_small_cnn_end_to_end():
    tg.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(4, 3),
    ).double()
    out = model(tg.randn(2, 1, 8, 8, dtype=tg.float64))
    assert out.shape == (2, 3)
    nn.CrossEntropyLoss()(out, tg.tensor([0, 2])).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
