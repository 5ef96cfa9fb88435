"""Autograders for Chapters 1-7: the Scalar engine, tensors, matmul, softmax, gradient checking, higher order."""
from __future__ import annotations

import collections
import math

import numpy as np

from .. import functional as F
from ..autograd import grad as _grad
from ..scalar import Scalar
from ..tensor import Tensor

from ._grader import _gradient_problem, _leaf, _mismatch, _np, _run

# =====================================================================================================
# Chapter 1: a new Scalar operation
# =====================================================================================================
def _sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))   # = 1/(1+e^-a), without overflow


def check_scalar_silu(SiLU):
    r"""Chapter 1: ``SiLU``, a `Function` for `Scalar` with :math:`\mathrm{silu}(a) = a\,\sigma(a)`.

    .. math::  \frac{d}{da}\, a\,\sigma(a) = \sigma(a) + a\,\sigma(a)(1 - \sigma(a)) = \sigma(a)\,\big(1 + a(1 - \sigma(a))\big)

    Checked: the value; ``x.grad`` after ``(c * y).backward()`` for a random
    upstream factor c (so the upstream gradient matters) against the formula;
    the same against a central difference of your own forward; and a graph
    where x is used twice (the gradients must add).
    """
    points = [-2.3, -0.7, 0.4, 1.9, 3.1]

    def value():
        for a in points:
            y = SiLU.apply(Scalar(a))
            if not isinstance(y, Scalar):
                return f"SiLU.apply(Scalar({a})) returned a {type(y).__name__}, expected a Scalar"
            if not math.isclose(y.data, a * _sigmoid(a), rel_tol=1e-12, abs_tol=1e-15):
                return f"silu({a}) = {y.data!r}, expected {a * _sigmoid(a)!r}"

    def derivative():
        for k, a in enumerate(points):
            c = (-1.7, 0.6, 2.5, -0.9, 1.3)[k]   # the upstream gradient of y
            x = Scalar(a)
            (SiLU.apply(x) * c).backward()
            s = _sigmoid(a)
            d = s * (1 + a * (1 - s))
            if not math.isclose(x.grad, c * d, rel_tol=1e-10, abs_tol=1e-12):
                forgot = math.isclose(x.grad, d, rel_tol=1e-9)   # x.grad = silu'(a): the factor c is missing
                hint = " Hint: backward ignores its upstream gradient `grad`." if forgot else ""
                return (f"at a = {a} with upstream gradient {c}: x.grad = {float(x.grad)!r}, expected "
                        f"{c} * silu'(a) = {float(c * d)!r}.{hint}")

    def central_difference():
        h = 1e-6
        for a in points:
            x = Scalar(a)
            SiLU.apply(x).backward()
            num = (SiLU.apply(Scalar(a + h)).data - SiLU.apply(Scalar(a - h)).data) / (2 * h)
            if not math.isclose(x.grad, num, rel_tol=1e-6, abs_tol=1e-8):
                return f"at a = {a}: x.grad = {x.grad!r} but the central difference of your forward is {num!r}"

    def used_twice():
        a = 0.8
        x = Scalar(a)
        y = SiLU.apply(x) * x + SiLU.apply(x * 2.0)    # d/dx = silu'(x) x + silu(x) + 2 silu'(2x)
        y.backward()
        d = lambda t: _sigmoid(t) * (1 + t * (1 - _sigmoid(t)))  # noqa: E731
        want = d(a) * a + a * _sigmoid(a) + 2 * d(2 * a)
        if not math.isclose(x.grad, want, rel_tol=1e-10):
            return f"for y = silu(x)·x + silu(2x) at x = {a}: x.grad = {x.grad!r}, expected {want!r}"

    return _run("scalar_silu", [("forward value", value), ("backward times the upstream gradient", derivative),
                                ("central differences", central_difference), ("x used twice", used_twice)])


# =====================================================================================================
# Chapter 2: the reverse topological order
# =====================================================================================================
def _describe(node):
    op = node.grad_fn.name if node.grad_fn is not None else ("leaf" if node.requires_grad else "constant")
    return f"{op} node (value {node.data:.6g})"


def _reachable(root):
    seen, stack = {id(root): root}, [root]
    while stack:
        node = stack.pop()
        if node.grad_fn is not None:
            for inp in node.grad_fn.inputs:
                if inp is not None and id(inp) not in seen:
                    seen[id(inp)] = inp
                    stack.append(inp)
    return seen


def check_topological_order(order_fn):
    """Chapter 2: ``order_fn(root)`` lists every node reachable from ``root``, each node before its inputs.

    Reachable means through ``node.grad_fn.inputs`` (skipping ``None``);
    leaves and constants are included; ``root`` comes first. Walking the list
    in this order, every node is complete (all its consumers have passed on
    their gradients) before it passes on its own. Checked on a diamond, on a
    graph with shared sub-expressions, and on a chain of 3,000 operations,
    which a recursive search cannot walk (Python's recursion limit is ~1,000).
    """
    def graphs():
        a = Scalar(3.0, label="a")
        b = a * a
        c = a + b
        yield "the diamond d = b·c, b = a², c = a + b", b * c
        x, y = Scalar(0.5), Scalar(-1.5)
        u = (x * y).tanh()
        v = u * x + y.exp()
        yield "a graph with shared sub-expressions", (u + v) * (v * u + x) + 2.0

    def check(root):
        order = order_fn(root)
        order = list(order)
        want = _reachable(root)
        ids = [id(n) for n in order]
        if len(set(ids)) != len(ids):
            counts = collections.Counter(ids)
            dup = next(n for n in order if counts[id(n)] > 1)
            return f"the {_describe(dup)} appears {counts[id(dup)]} times; each node belongs once"
        id_set = set(ids)
        missing = [n for k, n in want.items() if k not in id_set]
        if missing:
            return f"{len(missing)} reachable node(s) missing, e.g. the {_describe(missing[0])}"
        extra = [n for n in order if id(n) not in want]
        if extra:
            return f"{len(extra)} node(s) that are not reachable from root, e.g. {extra[0]!r}"
        if order[0] is not root:
            return f"the root must come first, got the {_describe(order[0])}"
        pos = {id(n): k for k, n in enumerate(order)}
        for n in order:
            if n.grad_fn is None:
                continue
            for inp in n.grad_fn.inputs:
                if inp is not None and pos[id(inp)] < pos[id(n)]:
                    return (f"the {_describe(inp)} (position {pos[id(inp)]}) comes before the "
                            f"{_describe(n)} (position {pos[id(n)]}) that consumes it; a node must wait for "
                            f"all its consumers")

    steps = [(name, (lambda root=root: check(root))) for name, root in graphs()]

    def deep():
        x = Scalar(1.0)
        y = x
        for _ in range(3000):
            y = y * 1.0001
        try:
            return check(y)
        except RecursionError:
            return ("RecursionError on a chain of 3,000 operations: keep your own stack (a list) instead of "
                    "recursing (chapter 2, 'An iterative walk')")

    steps.append(("a chain of 3,000 operations", deep))
    return _run("topological_order", steps)


# =====================================================================================================
# Chapter 3: broadcasting
# =====================================================================================================
_BROADCAST_CASES = [((4, 3), (3,)), ((4, 3), (4, 1)), ((4, 2, 3), (2, 1)), ((2, 3), (2, 3)), ((2, 3), ()),
                    ((5, 1, 3), (1, 1, 3)), ((3, 1, 4), (1,))]


def check_unbroadcast(unbroadcast):
    r"""Chapter 3: ``unbroadcast(grad, shape)`` sums a NumPy gradient back down to ``shape``.

    ``grad`` has the broadcast shape of an operation's output; the result has
    ``shape``: summed over the leading axes ``shape`` lacks, and (keeping the
    axis) over the axes where ``shape`` has size 1 but ``grad`` does not.
    Compared with the library's ``Tensor.sum_to``.
    """
    rng = np.random.default_rng(3)

    def case(big, small):
        g = rng.standard_normal(big)
        got = unbroadcast(g.copy(), small)
        want = Tensor(g).sum_to(small).numpy()
        problem = _mismatch(got, want, f"unbroadcast(grad of shape {big}, {small})")
        copies = np.prod(big) / np.prod(small or (1,))   # how many times each input element was copied
        if problem and np.shape(got) == tuple(small) and np.allclose(_np(got), want / copies):
            problem += " Hint: sum over the copies, do not average them."
        return problem

    return _run("unbroadcast", [(f"{big} -> {small}", (lambda b=big, s=small: case(b, s)))
                                for big, small in _BROADCAST_CASES])


def check_squared_difference(SquaredDifference):
    r"""Chapter 3: ``SquaredDifference.apply(a, b)`` = :math:`(a - b)^2`, elementwise, with broadcasting.

    .. math::  \bar a = \mathrm{unbroadcast}\big(2(a - b)\,\bar y\big), \qquad \bar b = -\mathrm{unbroadcast}\big(2(a - b)\,\bar y\big)

    Checked for equal shapes and for four broadcasting pairs: the value, and
    both gradients against central differences for a random upstream gradient.
    """
    rng = np.random.default_rng(4)
    cases = [((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((2, 1, 3), (4, 1)), ((3,), ())]

    def case(sa, sb):
        a, b = _leaf(rng.standard_normal(sa)), _leaf(rng.standard_normal(sb))
        y = SquaredDifference.apply(a, b)
        problem = _mismatch(y, (a.data - b.data) ** 2, "the value")
        return problem or _gradient_problem(SquaredDifference.apply, [a, b], ["a", "b"])

    return _run("squared_difference", [(f"shapes {sa} and {sb}", (lambda sa=sa, sb=sb: case(sa, sb)))
                                       for sa, sb in cases])


# =====================================================================================================
# Chapter 4: the matrix product
# =====================================================================================================
def check_matmul(MatMul):
    r"""Chapter 4: ``MatMul.apply(A, B)`` for matrices and stacks of matrices (batch axes broadcast).

    .. math::  \bar A = \mathrm{unbroadcast}(G B^\top), \qquad \bar B = \mathrm{unbroadcast}(A^\top G)

    with the transposes on the last two axes. Checked: two matrices; a batch
    times one shared matrix (its gradient sums over the batch); batch axes
    broadcast on both sides.
    """
    rng = np.random.default_rng(5)
    cases = [("(3, 4) @ (4, 2)", (3, 4), (4, 2)), ("a batch (5, 3, 4) @ a shared (4, 2)", (5, 3, 4), (4, 2)),
             ("(2, 1, 3, 4) @ (5, 4, 2), batch axes broadcast", (2, 1, 3, 4), (5, 4, 2))]

    def case(sa, sb):
        A, B = _leaf(rng.standard_normal(sa)), _leaf(rng.standard_normal(sb))
        problem = _mismatch(MatMul.apply(A, B), np.matmul(A.data, B.data), "the product")
        return problem or _gradient_problem(MatMul.apply, [A, B], ["A", "B"])

    return _run("matmul", [(name, (lambda sa=sa, sb=sb: case(sa, sb))) for name, sa, sb in cases])


# =====================================================================================================
# Chapter 5: log-softmax and cross-entropy
# =====================================================================================================
def _log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def check_log_softmax(LogSoftmax):
    r"""Chapter 5: ``LogSoftmax.apply(z)`` along the last axis, stable for huge logits.

    .. math::  \log p_i = (z_i - m) - \log \sum_j e^{z_j - m}, \quad m = \max_j z_j; \qquad
               \bar z = g - p \sum_i g_i

    Checked: the value; logits of ±10⁴ give finite results; the gradient for
    2-D and 3-D inputs against central differences.
    """
    rng = np.random.default_rng(6)

    def value():
        z = rng.standard_normal((3, 5)) * 2
        return _mismatch(LogSoftmax.apply(_leaf(z)), _log_softmax(z), "log_softmax of a (3, 5) input")

    def stable():
        z = np.array([[1e4, -1e4, 0.0], [-3.0, 1000.0, 999.0]])
        with np.errstate(all="ignore"):
            y = LogSoftmax.apply(_leaf(z))
        problem = _mismatch(y, _log_softmax(z), "log_softmax of [[1e4, -1e4, 0], [-3, 1000, 999]]")
        return problem and problem + " Hint: subtract the row's maximum before exponentiating."

    def gradient(shape):
        return _gradient_problem(LogSoftmax.apply, [_leaf(rng.standard_normal(shape) * 2)], ["z"])

    return _run("log_softmax", [("value", value), ("huge logits", stable),
                                ("gradient of a (3, 5) input", lambda: gradient((3, 5))),
                                ("gradient of a (2, 3, 4) input", lambda: gradient((2, 3, 4)))])


def check_cross_entropy(CrossEntropy):
    r"""Chapter 5: ``CrossEntropy.apply(z, target)``: the mean cross-entropy of (N, C) logits, fused.

    ``target`` is a NumPy array of N class indices (a plain argument: it gets
    no gradient, so backward returns ``None`` for it).

    .. math::  L = -\frac1N \sum_n \log \mathrm{softmax}(z_n)_{t_n}, \qquad \frac{\partial L}{\partial z} = \frac{P - Y}{N}

    Checked: the value against ``F.cross_entropy``; logits of ±10⁴; the
    gradient against central differences.
    """
    rng = np.random.default_rng(7)
    z0 = rng.standard_normal((5, 4)) * 3
    t0 = np.array([0, 3, 1, 1, 2])

    def value():
        want = F.cross_entropy(Tensor(z0), Tensor(t0)).item()
        return _mismatch(CrossEntropy.apply(_leaf(z0), t0), want, "the mean loss")

    def huge():
        z = _leaf(np.array([[1e4, -1e4, 0.0]]))
        with np.errstate(all="ignore"):
            loss = CrossEntropy.apply(z, np.array([1]))
        problem = _mismatch(loss, 2e4, "the loss of logits [1e4, -1e4, 0] for class 1")
        if problem:
            return problem + " Hint: compute log p with the max-subtraction trick, not log(softmax)."
        (g,) = _grad(loss, [z])
        return _mismatch(g, [[1.0, -1.0, 0.0]], "its gradient p - y")

    def gradient():
        return _gradient_problem(lambda z: CrossEntropy.apply(z, t0), [_leaf(z0)], ["z"])

    return _run("cross_entropy", [("value", value), ("huge logits", huge), ("gradient (P - Y)/N", gradient)])


# =====================================================================================================
# Chapter 6: finite differences
# =====================================================================================================
def check_numerical_vjp(numerical_vjp):
    r"""Chapter 6: ``numerical_vjp(f, x, v, eps=1e-6)``: the central-difference estimate of :math:`v^\top J`.

    ``f`` maps a NumPy array to a NumPy array, ``x`` is the point, ``v`` has
    the shape of ``f(x)``; the result has the shape of ``x``:

    .. math::  (v^\top J)_j \approx \frac{v^\top f(x + \varepsilon e_j) - v^\top f(x - \varepsilon e_j)}{2\varepsilon}

    Checked against the exact gradient from ``tg.grad``; with ``eps=1e-3``,
    where a central difference is still good to ~1e-6 but a one-sided one is
    off by ~1e-3; and ``x`` must be unchanged afterwards.
    """
    rng = np.random.default_rng(8)
    funcs = [
        ("f(x) = tanh(x) · sum(x), x of shape (3, 4)", (3, 4),
         lambda x: np.tanh(x) * x.sum(), lambda x: x.tanh() * x.sum()),
        ("f(x) = exp(x) @ W, x of shape (2, 3)", (2, 3),
         lambda x: np.exp(x) @ _W, lambda x: x.exp() @ Tensor(_W)),
    ]

    def case(shape, f_np, f_tg, eps):
        x = rng.standard_normal(shape)
        x_before = x.copy()
        xt = _leaf(x)
        out = f_tg(xt)
        v = rng.standard_normal(out.shape)
        (exact,) = _grad(out, [xt], grad_outputs=Tensor(v))
        got = numerical_vjp(f_np, x, v) if eps is None else numerical_vjp(f_np, x, v, eps=eps)
        if not np.array_equal(x, x_before):
            return "x was changed by the call: restore every perturbed entry (or perturb a copy)"
        tol = 1e-7 if eps is None else 2e-5
        problem = _mismatch(got, exact.numpy(), f"vᵀJ (eps={eps or 1e-6})", atol=tol, rtol=tol)
        if problem and np.shape(got) == x.shape and np.abs(_np(got) - exact.numpy()).max() < 100 * (eps or 1e-6):
            # close, but only to O(ε): the signature of a one-sided difference
            problem += " Hint: a one-sided difference (f(x+ε) - f(x))/ε has an O(ε) error; use the central one."
        elif problem and np.allclose(_np(got), exact.numpy() * 0 + _np(got).mean()):
            problem += " Hint: use v: the result is Σ_i v_i ∂f_i/∂x_j, not ∂(Σ f)/∂x."
        return problem

    steps = []
    for name, shape, f_np, f_tg in funcs:
        steps.append((name, lambda s=shape, a=f_np, b=f_tg: case(s, a, b, None)))
    steps.append(("eps = 1e-3: central, not forward", lambda: case((3, 4), funcs[0][2], funcs[0][3], 1e-3)))
    return _run("numerical_vjp", steps)


_W = np.random.default_rng(80).standard_normal((3, 5))


# =====================================================================================================
# Chapter 7: second derivatives
# =====================================================================================================
def check_sigmoid_twice(Sigmoid):
    r"""Chapter 7: ``Sigmoid.apply(x)``, elementwise, whose backward can be differentiated again.

    .. math::  \sigma'(x) = \sigma(1 - \sigma), \qquad
               \frac{d}{dx}\big[\bar y\,\sigma(1 - \sigma)\big] = \bar y\,\sigma(1-\sigma)(1 - 2\sigma)

    The second needs a backward built from tensor operations on the saved
    *output node* (``ctx.save_for_backward(out)``, ``ctx.saved_tensors``).
    Checked: the value; first derivatives; the function
    :math:`x \mapsto \nabla_x \sum_i w_i \sigma(x_i)` against central
    differences (second derivatives).
    """
    rng = np.random.default_rng(9)
    x0 = rng.standard_normal((3, 4)) * 2
    w = Tensor(rng.standard_normal((3, 4)))

    def value():
        return _mismatch(Sigmoid.apply(_leaf(x0)), _sigmoid(x0), "sigma(x)")

    def first():
        return _gradient_problem(Sigmoid.apply, [_leaf(x0)], ["x"])

    def second():
        def gradient_of(x):
            (g,) = _grad((Sigmoid.apply(x) * w).sum(), [x], create_graph=True)
            return g
        if not gradient_of(_leaf(x0)).requires_grad:
            return ("the gradient computed with create_graph=True is a constant (it does not require grad): the "
                    "backward computes with bare NumPy values; save the output with ctx.save_for_backward and "
                    "use tensor operations on ctx.saved_tensors")
        problem = _gradient_problem(gradient_of, [_leaf(x0)], ["x"], ones_hint=False)
        if problem:
            problem += (" Hint: first derivatives are right, second ones are not: the backward computes with bare "
                        "NumPy values; save the output with ctx.save_for_backward and use tensor operations.")
        return problem

    return _run("sigmoid_twice", [("value", value), ("first derivatives", first), ("second derivatives", second)])


def check_hvp(hvp):
    r"""Chapter 7: ``hvp(f, x, v)``: the Hessian-vector product :math:`Hv = \nabla_x(\nabla_x f \cdot v)`.

    ``f`` maps a Tensor to a scalar Tensor, ``x`` is a float64 Tensor with
    ``requires_grad``, ``v`` a NumPy array of ``x``'s shape; return ``Hv``
    (a Tensor or an array of ``x``'s shape), without forming ``H``. Checked on
    two functions whose Hessians are known in closed form:
    :math:`\tfrac12 x^\top A x` (:math:`H = \tfrac12(A + A^\top)`) and
    :math:`\sum \tanh^2 x_i + (x \cdot x)^2`
    (:math:`H = \mathrm{diag}(2(1-t^2)(1-3t^2)) + 4(x\cdot x) I + 8 x x^\top`).
    """
    rng = np.random.default_rng(10)
    n = 5
    A = rng.standard_normal((n, n))

    def quadratic():
        x, v = _leaf(rng.standard_normal(n)), rng.standard_normal(n)
        return _mismatch(hvp(lambda x: 0.5 * (x @ Tensor(A) @ x), x, v), 0.5 * (A + A.T) @ v,
                         "Hv for f = ½ xᵀAx")

    def tanh_quartic():
        x0, v = rng.standard_normal(n), rng.standard_normal(n)
        t = np.tanh(x0)
        H = np.diag(2 * (1 - t**2) * (1 - 3 * t**2)) + 4 * (x0 @ x0) * np.eye(n) + 8 * np.outer(x0, x0)
        return _mismatch(hvp(lambda x: (x.tanh() ** 2).sum() + (x @ x) ** 2, _leaf(x0), v), H @ v,
                         "Hv for f = Σ tanh²(x) + (x·x)²")

    return _run("hvp", [("a quadratic form", quadratic), ("tanh² plus a quartic", tanh_quartic)])
