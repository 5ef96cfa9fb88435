"""summary(model, input_size): rows of a hand-computed model, published totals, shared modules, errors, side effects."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import tinygrad_cv.functional as F
from tinygrad_cv import nn
from tinygrad_cv.models import alexnet, resnet18, resnet20, vgg16
from tinygrad_cv.models.vgg import CFGS
from tinygrad_cv.summary import LayerInfo, ModelSummary, summary


@pytest.fixture
def fast_init(monkeypatch):
    """Zeros instead of random draws: shapes, counts and mult-adds don't depend on the values;
    VGG-16 would draw 2 × 138 M numbers."""
    from tinygrad_cv.nn import init

    def zero(tensor, *args, **kwargs):
        tensor.data[...] = 0
        return tensor

    for name in ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_"):
        monkeypatch.setattr(init, name, zero)


class Tiny(nn.Module):
    """conv (grouped) -> act -> functional relu + 1 -> act again (shared) -> head (Flatten, Linear)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, groups=2)  # weight 4×1×3×3 = 36, bias 4
        self.act = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 5 * 5, 3))  # 300 + 3

    def forward(self, x):
        x = self.act(self.conv(x))
        x = F.relu(x) + 1  # functional: no row, nothing counted
        x = self.act(x)
        return self.head(x)


def test_rows_of_a_hand_computed_model():
    s = summary(Tiny(), (2, 2, 5, 5))
    got = [(r.name, r.type, r.depth, r.output_shape, r.params, r.own_mult_adds, r.mult_adds, r.is_leaf, r.is_recursive)
           for r in s.rows]
    assert got == [
        ("", "Tiny", 0, (2, 3), 343, 0, 2400, False, False),
        # 2·4·5·5 = 200 outputs, each a dot product over C_in/groups · 3·3 = 9 inputs
        ("conv", "Conv2d", 1, (2, 4, 5, 5), 40, 1800, 1800, True, False),
        ("act", "ReLU", 1, (2, 4, 5, 5), 0, 0, 0, True, False),
        ("act", "ReLU", 1, (2, 4, 5, 5), 0, 0, 0, True, True),  # the second call of a shared module
        ("head", "Sequential", 1, (2, 3), 303, 0, 600, False, False),
        ("head.0", "Flatten", 2, (2, 100), 0, 0, 0, True, False),
        ("head.1", "Linear", 2, (2, 3), 303, 600, 600, True, False),  # 2 samples · 3 · 100
    ]
    assert [r.parent for r in s.rows] == [None, 0, 0, 0, 0, 4, 4]
    assert (s.total_params, s.trainable_params, s.non_trainable_params, s.total_mult_adds) == (343, 343, 0, 2400)
    assert s.params_size_mb == pytest.approx(343 * 4 / 1e6)
    assert s.input_size_mb == pytest.approx(2 * 2 * 5 * 5 * 4 / 1e6)
    # leaf outputs: conv 200, act 200 twice, flatten 200, linear 6 -> ×4 bytes, ×2 for the gradients
    assert s.forward_backward_pass_size_mb == pytest.approx(2 * 806 * 4 / 1e6)
    assert isinstance(s, ModelSummary) and all(isinstance(r, LayerInfo) for r in s.rows)


def test_table_text():
    text = str(summary(Tiny(), (2, 2, 5, 5)))
    lines = text.splitlines()
    assert lines[1].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#", "Mult-Adds"]
    rows = {" ".join(line.split()[:2]): line.split()[2:] for line in lines[3:10]}
    assert rows["conv (Conv2d)"] == ["[2,", "4,", "5,", "5]", "40", "1,800"]
    assert rows["act (ReLU)"][-2:] == ["(recursive)", "--"]
    assert rows["head (Sequential)"] == ["[2,", "3]", "--", "--"]  # expanded: its children carry the numbers
    assert rows["head.1 (Linear)"] == ["[2,", "3]", "303", "600"]
    assert "    head.1 (Linear)" in text  # indented by depth
    for expected in ("Total params: 343", "Trainable params: 343", "Non-trainable params: 0",
                     "Total mult-adds: 2,400", "Params size (MB): 0.00"):
        assert expected in lines, expected
    assert repr(summary(Tiny(), (2, 2, 5, 5))) == text


def test_depth_hides_rows_but_not_totals():
    full = summary(Tiny(), (2, 2, 5, 5))
    s = summary(Tiny(), (2, 2, 5, 5), depth=1)
    assert len(s.rows) == len(full.rows) and s.total_mult_adds == full.total_mult_adds == 2400
    assert [r.name for r in s.visible_rows()] == ["", "conv", "act", "act", "head"]
    text = str(s)
    assert "head.1" not in text
    head = next(line for line in text.splitlines() if "head (Sequential)" in line)
    assert head.split()[-2:] == ["303", "600"]  # collapsed: the children's totals
    top = str(summary(Tiny(), (2, 2, 5, 5), depth=0)).splitlines()
    assert top[3].split() == ["Tiny", "[2,", "3]", "343", "2,400"]


def test_frozen_parameters_and_float64():
    model = Tiny().double()
    model.conv.weight.requires_grad_(False)
    s = summary(model, (1, 2, 5, 5))  # zeros of the model's dtype
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (343, 307, 36)
    assert s.params_size_mb == pytest.approx(343 * 8 / 1e6)
    assert s.rows[1].trainable_params == 4


def test_conv_transpose_and_several_inputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(3, 2, kernel_size=2, stride=2)
            self.fc = nn.Linear(4, 5)

        def forward(self, a, b):
            return self.up(a), self.fc(b)

    s = summary(Two(), [(1, 3, 4, 4), (2, 7, 4)])
    up, fc = s.rows[1], s.rows[2]
    assert up.output_shape == (1, 2, 8, 8) and up.own_mult_adds == 48 * 2 * 2 * 2  # each input element × C_out·kH·kW
    assert fc.output_shape == (2, 7, 5) and fc.own_mult_adds == 2 * 7 * 5 * 4
    assert s.rows[0].output_shape == [(1, 2, 8, 8), (2, 7, 5)]
    assert "[[1, 2, 8, 8], [2, 7, 5]]" in str(s)


def test_the_model_is_left_as_it_was():
    model = resnet20()
    model.train()
    model.layer1.eval()
    before = model.bn1.running_mean.data.copy()
    summary(model, (2, 3, 32, 32))
    assert model.training and model.layer2.training and not model.layer1.training and not model.layer1[0].bn1.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    np.testing.assert_array_equal(model.bn1.running_mean.data, before)  # ran in eval mode: no statistics updated
    assert model.bn1.num_batches_tracked.item() == 0


@pytest.mark.parametrize("bad", [(3, -1, 4), (), (1, 3, 0, 4), "1,3,32,32", (1, 3.0, 32, 32), None, [(1, 3), "x"]])
def test_bad_input_size_names_it(bad):
    with pytest.raises(ValueError, match="input_size") as err:
        summary(Tiny(), bad)
    assert repr(bad) in str(err.value)


def test_input_without_batch_axis_names_input_size():
    with pytest.raises(ValueError, match=r"input_size=\(2, 5, 5\).*batch axis"):
        summary(Tiny(), (2, 5, 5))


def test_other_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        summary(lambda x: x, (1, 2))
    with pytest.raises(ValueError, match="depth"):
        summary(Tiny(), (1, 2, 5, 5), depth=-1)


# --- published models -------------------------------------------------------------------------------

def vgg16_mult_adds():
    """Closed form: Σ_conv H·W·C_out·C_in·9 over configuration D at 224×224, plus the three linear layers."""
    h, c, total = 224, 3, 0
    for v in CFGS["D"]:
        if v == "M":
            h //= 2
        else:
            total += h * h * v * c * 9
            c = v
    return total + 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000


def test_vgg16(fast_init):
    s = summary(vgg16(), (1, 3, 224, 224))
    assert s.total_params == 138_357_544
    assert s.total_mult_adds == vgg16_mult_adds() == 15_470_264_320
    assert round(s.total_mult_adds / 1e9, 2) == 15.47
    # torchinfo's 15.48 G also counts one add per conv output element (bias) and per linear output
    conv_outputs = sum(r.output_shape[1] * r.output_shape[2] * r.output_shape[3] for r in s.rows if r.type == "Conv2d")
    assert round((s.total_mult_adds + conv_outputs + 4096 + 4096 + 1000) / 1e9, 2) == 15.48
    assert s.rows[0].output_shape == (1, 1000)
    assert s.params_size_mb == pytest.approx(553.43, abs=0.01)  # torchinfo's "Params size (MB)"
    assert "Total mult-adds (G): 15.47" in str(s)


@pytest.mark.parametrize("factory,input_size,params,mult_adds,published", [
    # conv 70,276,800 + 223,948,800 + 112,140,288 + 149,520,384 + 99,680,256, linear 58,621,952: torchinfo 0.71 G
    (alexnet, (1, 3, 224, 224), 61_100_840, 714_188_480, 0.71e9),
    # conv1 118,013,952, four 3×3 convs per stage of 115,605,504 (the first of stages 2-4: 57,802,752), three
    # 1×1 downsamples of 6,422,528, fc 512,000: torchinfo 1.81 G
    (resnet18, (1, 3, 224, 224), 11_689_512, 1_814_073_344, 1.81e9),
    # the CIFAR ResNet-20: "0.27M" parameters, ~41 M mult-adds
    (resnet20, (1, 3, 32, 32), 269_722, 40_551_040, 41e6),
])
def test_published_totals(fast_init, factory, input_size, params, mult_adds, published):
    s = summary(factory(), input_size)
    assert s.total_params == params
    assert s.total_mult_adds == mult_adds
    assert abs(s.total_mult_adds - published) / published < 0.02


def test_resnet_shared_relu_and_functional_additions():
    s = summary(resnet20(), (1, 3, 32, 32))
    relu_calls = [r for r in s.rows if r.name == "layer1.0.relu"]
    assert [r.is_recursive for r in relu_calls] == [False, True]  # BasicBlock calls self.relu twice
    assert not any(r.type == "ShortcutA" for r in s.rows if r.params)  # option A: parameter-free
    # the block rows add up their convolutions: 2 · 32·32·16·16·9
    assert next(r for r in s.rows if r.name == "layer1.0").mult_adds == 2 * 32 * 32 * 16 * 16 * 9


def test_lazy_attribute():
    code = (
        "import sys, tinygrad_cv as tg\n"
        "assert 'tinygrad_cv.summary' not in sys.modules\n"
        "assert 'summary' in dir(tg)\n"
        "s = tg.summary.summary(tg.nn.Linear(3, 2), (4, 3))\n"
        "assert (s.total_params, s.total_mult_adds) == (8, 24), s\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
