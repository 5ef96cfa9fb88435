"""Autograders for Chapters 8-12: convolution, pooling, the MLP, modules, optimisers, dropout and batch norm."""
from __future__ import annotations


import numpy as np

from .. import functional as F
from ..autograd import grad as _grad
from ..tensor import Tensor

from ._grader import _away_from, _gradient_problem, _leaf, _mismatch, _np, _ratio_hint, _run

# =====================================================================================================
# Chapter 8: convolution
# =====================================================================================================
def check_conv_output_size(out_size):
    r"""Chapter 8: ``out_size(H, K, stride=1, padding=0, dilation=1)``, the output length of a convolution.

    .. math::  H_{\text{out}} = \left\lfloor \frac{H + 2P - d(K - 1) - 1}{s} \right\rfloor + 1
    """
    def grid():
        for H in (1, 5, 7, 28, 32):
            for K in (1, 2, 3, 5):
                for s in (1, 2, 3):
                    for P in (0, 1, 2):
                        for d in (1, 2):
                            if H + 2 * P - d * (K - 1) - 1 >= 0:
                                yield H, K, s, P, d

    def run(keys):
        for H, K, s, P, d in grid():
            if d != 1 and "dilation" not in keys:
                continue
            args = {"stride": s, "padding": P, "dilation": d}
            args = {k: a for k, a in args.items() if k in keys}
            want = (H + 2 * P - d * (K - 1) - 1) // s + 1
            got = out_size(H, K, **args)
            if got != want:
                call = ", ".join([f"H={H}", f"K={K}"] + [f"{k}={a}" for k, a in args.items()])
                return f"out_size({call}) = {got!r}, expected {want}"

    return _run("conv_output_size", [("stride and padding", lambda: run({"stride", "padding"})),
                                     ("dilation too", lambda: run({"stride", "padding", "dilation"}))])


def check_conv2d_backward_input(conv2d_backward_input):
    r"""Chapter 8: ``conv2d_backward_input(gy, w, x_shape, stride, padding)``, NumPy, for any stride.

    ``gy`` (N, O, OH, OW) is the gradient of the output of
    ``F.conv2d(x, w, stride=stride, padding=padding)``, ``w`` (O, C, K, K);
    return :math:`\partial L/\partial x` of shape ``x_shape``:

    .. math::  \bar x_{\text{pad}}[n, c, is + p, js + q] \mathrel{+}= \bar u[n, o, i, j]\; w[o, c, p, q]

    then crop the padding (or: dilate ``gy`` by s, pad, correlate with the
    flipped kernel). Compared with the reference twin for strides 1, 2 and 3,
    including sizes whose last rows the stride leaves unread.
    """
    from ..kernels import reference as ref

    rng = np.random.default_rng(11)
    cases = [(6, 6, 1, 1, 3), (10, 9, 2, 1, 3), (9, 9, 2, 1, 3), (8, 7, 2, 0, 2), (11, 8, 3, 2, 3)]

    def case(H, W, s, P, K):
        x_shape = (2, 3, H, W)
        w = rng.standard_normal((4, 3, K, K))
        OH, OW = (H + 2 * P - K) // s + 1, (W + 2 * P - K) // s + 1
        gy = rng.standard_normal((2, 4, OH, OW))
        want = ref.conv2d_backward_input(gy, w, x_shape, s, P, 1, 1)
        got = conv2d_backward_input(gy.copy(), w.copy(), x_shape, s, P)
        problem = _mismatch(got, want, "the input gradient")
        if problem and (H + 2 * P - K) % s and np.shape(got) != x_shape:
            problem += (f" Hint: here (H + 2P - K) mod s = {(H + 2 * P - K) % s} rows at the bottom are never read; "
                        "their gradient is 0 but they still belong to x's shape.")
        return problem

    return _run("conv2d_backward_input", [(f"H×W {c[0]}×{c[1]}, stride {c[2]}, padding {c[3]}, kernel {c[4]}",
                                           (lambda c=c: case(*c))) for c in cases])


# =====================================================================================================
# Chapter 9: max pooling
# =====================================================================================================
def check_max_pool_backward(max_pool_backward):
    r"""Chapter 9: ``max_pool_backward(x, gy, kernel_size, stride)``: the gradient of max pooling, NumPy.

    No padding; ``x`` (N, C, H, W), ``gy`` the output gradient. Each output's
    gradient goes to the element that won its window (the first maximum, in
    row-major order, on a tie); where windows overlap an element can win
    several and collects the sum:

    .. math::  \bar x[n, c, h, w] = \sum_{(i, j):\ (h, w) = \arg\max \text{ of window } (i, j)} \bar y[n, c, i, j]

    Compared with the reference twin; inputs without ties first, then a tie.
    """
    from ..kernels import reference as ref

    rng = np.random.default_rng(12)

    def distinct(shape):
        # a random order of values 0.1 apart: no ties, and far apart for any central difference
        n = int(np.prod(shape))
        return (rng.permutation(n) * 0.1 + rng.uniform(0, 0.01, n)).reshape(shape)

    def case(x, k, s, what):
        y, idx = ref.max_pool2d_forward(x, (k, k), (s, s), (0, 0), (1, 1), False)
        gy = rng.standard_normal(y.shape)
        want = ref.max_pool2d_backward(gy, idx, x.shape)
        got = max_pool_backward(x.copy(), gy.copy(), k, s)
        problem = _mismatch(got, want, what)
        if problem and k > s and np.shape(got) == x.shape:
            problem += (f" Hint: with kernel {k} > stride {s} the windows overlap: an element that wins several "
                        "windows collects the sum of their gradients (+=, not =).")
        return problem

    tie = np.zeros((1, 1, 4, 4))
    tie[0, 0] = [[1, 3, 0, 2], [3, 2, 2, 2], [0, 0, 5, 5], [0, 0, 5, 1]]
    steps = [
        ("2×2 windows, stride 2", lambda: case(distinct((2, 3, 6, 6)), 2, 2, "the gradient")),
        ("3×3 windows, stride 2 (overlapping)", lambda: case(distinct((2, 2, 7, 7)), 3, 2, "the gradient")),
        ("3×3 windows, stride 1", lambda: case(distinct((1, 2, 5, 6)), 3, 1, "the gradient")),
        ("ties: the first maximum wins", lambda: case(tie, 2, 2, "the gradient with tied maxima")),
    ]
    return _run("max_pool_backward", steps)


# =====================================================================================================
# Chapter 10: the δ-rule
# =====================================================================================================
def check_delta_rule(mlp_gradients):
    r"""Chapter 10: ``mlp_gradients(X, t, weights, biases)`` by the δ-rule, in NumPy.

    The MLP: :math:`A^{(0)} = X` (N, n₀); :math:`Z^{(l)} = A^{(l-1)} W^{(l)\top} + b^{(l)}` with
    ``weights[l-1]`` of shape (n_l, n_{l-1}); :math:`A^{(l)} = \tanh Z^{(l)}`
    for hidden layers; the last Z are logits; the loss is the mean
    cross-entropy against the class indices ``t``. Return ``(dWs, dbs)``,
    lists like ``weights`` and ``biases``:

    .. math::  \Delta^{(L)} = \frac{P - Y}{N},\quad \Delta^{(l)} = (\Delta^{(l+1)} W^{(l+1)}) \odot (1 - \tanh^2 Z^{(l)}),\quad
               \bar W^{(l)} = \Delta^{(l)\top} A^{(l-1)},\quad \bar b^{(l)} = \textstyle\sum_n \Delta^{(l)}_n

    Compared with ``backward()`` on the same network, for one and for two
    hidden layers.
    """
    rng = np.random.default_rng(13)

    def case(widths, N=7):
        X = rng.standard_normal((N, widths[0]))
        t = rng.integers(0, widths[-1], N)
        Ws = [rng.standard_normal((o, i)) / np.sqrt(i) for i, o in zip(widths[:-1], widths[1:])]
        bs = [rng.standard_normal(o) * 0.1 for o in widths[1:]]
        Wt, bt = [_leaf(W) for W in Ws], [_leaf(b) for b in bs]
        h = Tensor(X)
        for k, (W, b) in enumerate(zip(Wt, bt)):
            h = h @ W.T + b
            if k < len(Wt) - 1:
                h = h.tanh()
        loss = F.cross_entropy(h, Tensor(t))
        grads = _grad(loss, Wt + bt)
        dWs, dbs = mlp_gradients(X.copy(), t.copy(), [W.copy() for W in Ws], [b.copy() for b in bs])
        if len(dWs) != len(Ws) or len(dbs) != len(bs):
            return f"expected {len(Ws)} weight and {len(bs)} bias gradients, got {len(dWs)} and {len(dbs)}"
        # from the top down: the first wrong layer is where the error entered
        for l in reversed(range(len(Ws))):
            for got, want, what in ((dWs[l], grads[l], "dW"), (dbs[l], grads[len(Ws) + l], "db")):
                problem = _mismatch(got, want.numpy(), f"{what} of layer {l + 1} (of {len(Ws)})")
                if problem:
                    hint = _ratio_hint(_np(got), want.numpy()) if np.shape(got) == want.shape else ""
                    return problem + hint
        return None

    return _run("delta_rule", [("one hidden layer: 2 → 16 → 3", lambda: case((2, 16, 3))),
                               ("two hidden layers: 4 → 5 → 6 → 3", lambda: case((4, 5, 6, 3)))])


# =====================================================================================================
# Chapter 10a: modules and initialisation
# =====================================================================================================
def check_leaky_relu(LeakyReLU):
    r"""Chapter 10a: ``LeakyReLU.apply(x, alpha)``: :math:`\max(x, \alpha x)` for :math:`0 \le \alpha < 1`.

    .. math::  \bar x = \bar y \cdot \begin{cases} 1 & x > 0 \\ \alpha & x \le 0 \end{cases}

    Checked at two slopes, on inputs kept away from the kink at 0.
    """
    rng = np.random.default_rng(14)

    def case(alpha):
        x = _leaf(_away_from(rng, (4, 5)))
        want = np.where(x.data > 0, x.data, alpha * x.data)
        problem = _mismatch(LeakyReLU.apply(x, alpha), want, f"the value for alpha = {alpha}")
        return problem or _gradient_problem(lambda x: LeakyReLU.apply(x, alpha), [x], ["x"])

    return _run("leaky_relu", [("alpha = 0.1", lambda: case(0.1)), ("alpha = 0.3", lambda: case(0.3)),
                               ("alpha = 0 (ReLU)", lambda: case(0.0))])


def check_linear_module(Linear):
    r"""Chapter 10a: ``Linear(in_features, out_features)``, an ``nn.Module`` with He-normal weights.

    Parameters, registered in this order: ``weight`` (out, in), drawn from
    :math:`\mathcal N(0, 2/n_{\text{in}})`, and ``bias`` (out,), zeros.
    ``forward(x)`` = :math:`x W^\top + b`. Checked: the parameter names and
    shapes; the weights' variance and mean on a 400 × 300 layer (120,000 draws:
    within 5 %); the value and gradients of the forward pass.
    """
    from ..nn import Module, Parameter

    def structure():
        m = Linear(3, 2)
        if not isinstance(m, Module):
            return f"Linear(3, 2) is a {type(m).__name__}, expected an nn.Module subclass"
        named = list(m.named_parameters())
        names = [n for n, _ in named]
        if names != ["weight", "bias"]:
            return f"named_parameters() gives {names}, expected ['weight', 'bias'] (assign self.weight first)"
        for (n, p), shape in zip(named, [(2, 3), (2,)]):
            if not isinstance(p, Parameter):
                return f"{n} is a {type(p).__name__}, expected an nn.Parameter"
            if tuple(p.shape) != shape:
                return f"{n} has shape {tuple(p.shape)}, expected {shape}"

    def init():
        m = Linear(300, 400)
        w, b = _np(m.weight), _np(m.bias)
        var = w.var()
        if abs(var / (2 / 300) - 1) > 0.05:
            return (f"the weights' variance is {var:.4g}, expected 2/n_in = {2 / 300:.4g} (He: std = sqrt(2/fan_in))"
                    + (" Hint: that is 2/fan_out." if abs(var / (2 / 400) - 1) < 0.05 else ""))
        if abs(w.mean()) > 0.01:
            return f"the weights' mean is {w.mean():.4g}, expected 0"
        if np.any(b != 0):
            return "the bias should start at zero"

    def forward():
        m = Linear(4, 3)
        rng = np.random.default_rng(15)
        with_values = [(m.weight, rng.standard_normal((3, 4))), (m.bias, rng.standard_normal(3))]
        for p, val in with_values:
            p.data = val.astype(p.data.dtype)
        x = _leaf(rng.standard_normal((5, 4)))
        problem = _mismatch(m(x), x.data @ _np(m.weight).T + _np(m.bias), "forward(x)", atol=1e-5, rtol=1e-5)
        if problem:
            return problem
        y = m(x)
        grads = _grad((y * Tensor(rng.standard_normal(y.shape))).sum(), [m.weight, m.bias], allow_unused=True)
        if any(g is None for g in grads):
            return "no gradient reaches weight or bias through forward: use tensor operations on the Parameters"

    return _run("linear_module", [("parameters", structure), ("He-normal initialisation", init),
                                  ("forward and backward", forward)])


# =====================================================================================================
# Chapter 11: optimisers
# =====================================================================================================
def _bowl(rng, n=6):
    """A quadratic bowl ½ Σ h_i θ_i² with very different curvatures, and a start."""
    return rng.uniform(0.1, 10, n), rng.standard_normal(n)


def _library_run(make_opt, h, theta0, steps):
    """The trajectory of a tinygrad_cv optimiser on the bowl: θ after each step."""
    from .. import optim  # noqa: F401 (make_opt uses it)

    theta = Tensor(theta0.copy(), requires_grad=True)
    opt = make_opt([theta])
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (Tensor(h) * theta * theta).sum()).backward()
        opt.step()
        out.append(theta.data.copy())
    return out


def check_momentum_step(momentum_step):
    r"""Chapter 11: ``momentum_step(theta, g, buf, lr, momentum, nesterov=False, weight_decay=0.0)``.

    NumPy in, ``(theta, buf)`` out; ``buf`` is ``None`` on the first step.
    PyTorch's SGD, as ``optim.SGD``:

    .. math::  g \leftarrow g + \lambda\theta;\quad b \leftarrow g \text{ (first step) or } \mu b + g;\quad
               \theta \leftarrow \theta - \eta\,(g + \mu b \text{ if Nesterov, else } b)

    Compared step by step with ``optim.SGD`` over 8 steps on a quadratic bowl.
    """
    from .. import optim

    rng = np.random.default_rng(16)
    h, theta0 = _bowl(rng)

    def case(lr, mu, nesterov, wd):
        want = _library_run(lambda p: optim.SGD(p, lr=lr, momentum=mu, nesterov=nesterov, weight_decay=wd),
                            h, theta0, 8)
        theta, buf = theta0.copy(), None
        for k in range(8):
            theta, buf = momentum_step(theta, h * theta, buf, lr, mu, nesterov=nesterov, weight_decay=wd)
            problem = _mismatch(theta, want[k], f"θ after step {k + 1}", atol=1e-10, rtol=1e-9)
            if problem:
                g0 = h * theta0 + wd * theta0
                if k == 0 and nesterov and np.allclose(_np(theta), theta0 - lr * g0):
                    problem += " Hint: with Nesterov the step is along g + μ b, not b."
                elif k == 0 and not nesterov:
                    problem += " Hint: the first step starts the buffer at b = g."
                return problem

    return _run("momentum_step", [("momentum 0.9", lambda: case(0.05, 0.9, False, 0.0)),
                                  ("Nesterov", lambda: case(0.05, 0.9, True, 0.0)),
                                  ("momentum 0.5 with weight decay 0.1", lambda: case(0.1, 0.5, False, 0.1))])


def check_adam_step(adam_step):
    r"""Chapter 11: ``adam_step(theta, g, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)``.

    NumPy in, ``(theta, m, v)`` out; ``m`` and ``v`` start at zeros, ``t`` at 1.
    Adam as ``optim.Adam`` (PyTorch's arrangement of ε):

    .. math::  g \leftarrow g + \lambda\theta;\quad m \leftarrow \beta_1 m + (1-\beta_1) g;\quad
               v \leftarrow \beta_2 v + (1-\beta_2) g^2;\quad
               \theta \leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,\frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \varepsilon}

    Compared step by step with ``optim.Adam`` over 8 steps on a quadratic bowl.
    """
    from .. import optim

    rng = np.random.default_rng(17)
    h, theta0 = _bowl(rng)

    def case(lr, betas, wd):
        want = _library_run(lambda p: optim.Adam(p, lr=lr, betas=betas, weight_decay=wd), h, theta0, 8)
        theta, m, v = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
        for k in range(8):
            theta, m, v = adam_step(theta, h * theta, m, v, k + 1, lr=lr, betas=betas, weight_decay=wd)
            problem = _mismatch(theta, want[k], f"θ after step {k + 1}", atol=1e-10, rtol=1e-9)
            if problem:
                if k == 0:
                    step = np.abs(_np(theta) - theta0)
                    problem += (f" Hint: the first step should move every coordinate by about lr = {lr} "
                                f"(yours: {step.min():.3g} to {step.max():.3g}); bias correction divides by 1 - βᵗ.")
                return problem

    return _run("adam_step", [("defaults but lr 0.1", lambda: case(0.1, (0.9, 0.999), 0.0)),
                              ("betas (0.8, 0.99)", lambda: case(0.05, (0.8, 0.99), 0.0)),
                              ("L2 weight decay 0.1", lambda: case(0.05, (0.9, 0.999), 0.1))])


# =====================================================================================================
# Chapter 12: dropout and batch normalisation
# =====================================================================================================
def check_dropout(Dropout):
    r"""Chapter 12: ``Dropout.apply(x, u, p)``: inverted dropout with given uniforms ``u`` (NumPy, x's shape).

    .. math::  y = x \odot m, \qquad m = \begin{cases} 1/(1-p) & u \ge p \\ 0 & u < p \end{cases}, \qquad \bar x = \bar y \odot m

    (``p = 1`` drops everything: zeros, not NaN.) Taking the uniforms as an
    argument makes the mask reproducible; the reference twin's
    ``dropout_mask`` draws them the same way. Checked at p = 0.25, 0.5, 0 and 1.
    """
    rng = np.random.default_rng(18)

    def case(p):
        x = _leaf(rng.standard_normal((5, 6)))
        u = rng.random((5, 6))
        mask = np.where(u >= p, 0.0 if p == 1 else 1 / (1 - p), 0.0)
        with np.errstate(all="ignore"):
            problem = _mismatch(Dropout.apply(x, u, p), x.data * mask, f"the output for p = {p}")
        if problem and p not in (0, 1):
            y = _np(Dropout.apply(x, u, p))
            if np.allclose(y, x.data * (u >= p)):
                problem += " Hint: inverted dropout scales the kept units by 1/(1 - p)."
        return problem or _gradient_problem(lambda x: Dropout.apply(x, u, p), [x], ["x"])

    return _run("dropout", [(f"p = {p}", (lambda p=p: case(p))) for p in (0.25, 0.5, 0.0, 1.0)])


def check_batch_norm(BatchNorm):
    r"""Chapter 12: ``BatchNorm.apply(x, weight, bias)``: training-mode batch norm as one Function (eps 1e-5).

    Per channel (axis 1), over the other axes' n values:

    .. math::  \hat x = (x - \mu)\,s,\ s = (\sigma^2 + \varepsilon)^{-1/2};\quad y = \gamma \hat x + \beta;\quad
               \bar x = \frac{s}{n}\Big(n \bar{\hat x} - \sum \bar{\hat x} - \hat x \sum \bar{\hat x}\hat x\Big),\
               \bar{\hat x} = \gamma \bar y

    and :math:`\bar\gamma = \sum \bar y \hat x`, :math:`\bar\beta = \sum \bar y`. Compared with the
    reference twin and, for all three gradients, with central differences, for
    (N, C) and (N, C, H, W) inputs.
    """
    from ..kernels import reference as ref

    rng = np.random.default_rng(19)

    def case(shape):
        C = shape[1]
        x = _leaf(rng.standard_normal(shape) * 2 + 1)
        w, b = _leaf(rng.standard_normal(C)), _leaf(rng.standard_normal(C))
        mean, var = ref.batch_norm_stats(x.data)
        want = ref.batch_norm_forward(x.data, mean, var, w.data, b.data, 1e-5)[0]
        problem = _mismatch(BatchNorm.apply(x, w, b), want, "the output", atol=1e-7)
        if problem:
            y = _np(BatchNorm.apply(x, w, b))
            if y.shape == want.shape:
                xs = x.data.swapaxes(0, 1).reshape(C, -1)
                unbiased = ref.batch_norm_forward(x.data, mean, xs.var(axis=1, ddof=1), w.data, b.data, 1e-5)[0]
                if np.allclose(y, unbiased):
                    problem += " Hint: normalise with the biased variance (divide by n, not n - 1)."
            return problem
        return _gradient_problem(BatchNorm.apply, [x, w, b], ["x", "weight", "bias"])

    return _run("batch_norm", [("(N, C) = (6, 3)", lambda: case((6, 3))),
                               ("(N, C, H, W) = (3, 2, 3, 2)", lambda: case((3, 2, 3, 2)))])
