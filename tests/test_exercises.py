"""The exercise autograders, tested both ways.

Every ``check_*`` in ``tinygrad_cv/exercises/`` must pass the reference
solution in ``docs/solutions/`` and must fail — with a report that says what
is wrong, not with an exception — for at least one deliberately wrong
solution: the mistakes a learner is likely to make (a forgotten upstream
gradient, a missing 1/N, a forward difference, ``=`` where windows overlap
need ``+=``, a forgotten ``zero_grad``, ...). A checker that passed
everything would be worthless; one that failed the reference would be worse.
"""
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import exercises as E
from tinygrad_cv import nn

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "docs" / "solutions"


def solution(chapter):
    """The module docs/solutions/<chapter>.py (not a package: loaded by path)."""
    name = f"solutions_{chapter}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SOLUTIONS / f"{chapter}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# (checker, chapter file, the name of the reference solution in it)
CASES = [
    ("check_scalar_silu", "ch01", "SiLU"),
    ("check_topological_order", "ch02", "topological_order"),
    ("check_unbroadcast", "ch03", "unbroadcast"),
    ("check_squared_difference", "ch03", "SquaredDifference"),
    ("check_matmul", "ch04", "MatMul"),
    ("check_log_softmax", "ch05", "LogSoftmax"),
    ("check_cross_entropy", "ch05", "CrossEntropy"),
    ("check_numerical_vjp", "ch06", "numerical_vjp"),
    ("check_sigmoid_twice", "ch07", "Sigmoid"),
    ("check_hvp", "ch07", "hvp"),
    ("check_conv_output_size", "ch08", "out_size"),
    ("check_conv2d_backward_input", "ch08", "conv2d_backward_input"),
    ("check_max_pool_backward", "ch09", "max_pool_backward"),
    ("check_delta_rule", "ch10", "mlp_gradients"),
    ("check_leaky_relu", "ch10a", "LeakyReLU"),
    ("check_linear_module", "ch10a", "Linear"),
    ("check_momentum_step", "ch11", "momentum_step"),
    ("check_adam_step", "ch11", "adam_step"),
    ("check_early_stopping", "ch11a", "early_stopping"),
    ("check_train_val_split", "ch11a", "train_val_split"),
    ("check_dropout", "ch12", "Dropout"),
    ("check_batch_norm", "ch12", "BatchNorm"),
    ("check_train_step", "ch13", "train_step"),
    ("check_im2col", "ch14", "im2col"),
    ("check_block_max", "ch15", "block_max"),
    ("check_saliency", "ch16", "saliency"),
    ("check_fgsm", "ch17", "fgsm"),
    ("check_distillation_loss", "ch18", "distillation_loss"),
]


# kernels are defined at module level: the CUDA simulator swaps the module-global name `cuda`
# for its own inside a kernel, which it cannot do for a name captured from an enclosing function
if tg.cuda.is_available():
    from numba import cuda

    _T = 16

    @cuda.jit
    def _zero_identity(x, out):
        sm = cuda.shared.array(_T, np.float64)
        t = cuda.threadIdx.x
        acc = 0.0                                            # BUG: 0 beats negative values
        k = t
        while k < x.size:
            acc = max(acc, x[k])
            k += _T
        sm[t] = acc
        cuda.syncthreads()
        s = _T // 2
        while s > 0:
            if t < s:
                sm[t] = max(sm[t], sm[t + s])
            cuda.syncthreads()
            s //= 2
        if t == 0:
            out[0] = sm[0]

    @cuda.jit
    def _first_block_only(x, out):
        sm = cuda.shared.array(_T, np.float64)
        t = cuda.threadIdx.x
        sm[t] = x[t] if t < x.size else -math.inf            # BUG: no block-stride loop
        cuda.syncthreads()
        s = _T // 2
        while s > 0:
            if t < s:
                sm[t] = max(sm[t], sm[t + s])
            cuda.syncthreads()
            s //= 2
        if t == 0:
            out[0] = sm[0]


def _wrong_kernels():
    return _zero_identity, _first_block_only


def _needs_cuda(checker):
    if checker == "check_block_max" and not tg.cuda.is_available():
        pytest.skip("no GPU and no CUDA simulator")


def test_every_checker_is_tested():
    checkers = {n for n in E.__all__ if n.startswith("check_")}
    assert checkers == {c for c, _, _ in CASES}
    assert checkers <= set(WRONG)


@pytest.mark.parametrize("checker, chapter, name", CASES, ids=[c for c, _, _ in CASES])
def test_reference_solution_passes(checker, chapter, name):
    _needs_cuda(checker)
    report = getattr(E, checker)(getattr(solution(chapter), name))
    assert isinstance(report, E.Report)
    assert report.passed, str(report)
    assert str(report).startswith("✓") and report.checks


# =====================================================================================================
# Deliberately wrong solutions: (the wrong one, a phrase its report must contain)
# =====================================================================================================
def _wrong_silu():
    class ForgetsUpstream(tg.Function):
        @staticmethod
        def forward(ctx, a):
            s = 1 / (1 + math.exp(-a))
            ctx.save_for_backward(a, s)
            return a * s

        @staticmethod
        def backward(ctx, grad):
            a, s = ctx.saved_values
            return s * (1 + a * (1 - s))          # BUG: not multiplied by grad

    class SigmoidDerivative(ForgetsUpstream):
        @staticmethod
        def backward(ctx, grad):
            a, s = ctx.saved_values
            return grad * s * (1 - s)             # BUG: the derivative of σ, not of a σ(a)

    return [(ForgetsUpstream, "ignores its upstream gradient"), (SigmoidDerivative, "x.grad =")]


def _wrong_topological_order():
    def recursive(root):                           # right order, but recursion: fails on deep graphs
        post, seen = [], set()

        def visit(n):
            seen.add(id(n))
            for i in (n.grad_fn.inputs if n.grad_fn else ()):
                if i is not None and id(i) not in seen:
                    visit(i)
            post.append(n)
        visit(root)
        return post[::-1]

    def breadth_first(root):                       # BFS order: a shared node can come too early
        order, seen, queue = [], {id(root)}, [root]
        while queue:
            n = queue.pop(0)
            order.append(n)
            for i in (n.grad_fn.inputs if n.grad_fn else ()):
                if i is not None and id(i) not in seen:
                    seen.add(id(i))
                    queue.append(i)
        return order

    def marks_on_push(root):                      # the iterative DFS that marks nodes when pushed
        post, visited, stack = [], {id(root)}, [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                post.append(node)
                continue
            stack.append((node, True))
            for i in (node.grad_fn.inputs if node.grad_fn else ()):
                if i is not None and id(i) not in visited:
                    visited.add(id(i))
                    stack.append((i, False))
        return post[::-1]

    def leaves_only(root):
        return [root]

    return [(recursive, "RecursionError"), (breadth_first, "that consumes it"),
            (marks_on_push, "that consumes it"), (leaves_only, "missing")]


def _wrong_unbroadcast():
    def leading_only(grad, shape):
        return grad.sum(axis=tuple(range(grad.ndim - len(shape))))     # BUG: forgets the size-1 axes

    def averages(grad, shape):
        return solution("ch03").unbroadcast(grad, shape) / (grad.size / max(1, int(np.prod(shape))))

    return [(leading_only, "has shape"), (averages, "do not average")]


def _wrong_squared_difference():
    class NoUnbroadcast(tg.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return (a - b) ** 2

        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            return grad * 2 * (a - b), grad * 2 * (a - b)   # BUG: b's sign, and no sum over the copies

    return [(NoUnbroadcast, "gradient of b")]


def _wrong_matmul():
    class NoBatchSum(tg.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return np.matmul(a, b)

        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            return grad @ b.mT, a.mT @ grad           # BUG: right for matrices, wrong shape for a shared B

    class Untransposed(NoBatchSum):
        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            return (grad @ b.mT).sum_to(a.shape), (grad.mT @ a).mT.sum_to(b.shape) * 2   # BUG: factor 2

    return [(NoBatchSum, "a shared (4, 2)"), (Untransposed, "2 times the right one")]


def _wrong_log_softmax():
    class Naive(tg.Function):
        @staticmethod
        def forward(ctx, z):
            out = np.log(np.exp(z) / np.exp(z).sum(-1, keepdims=True))   # BUG: overflows
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, grad):
            (logp,) = ctx.saved_tensors
            return grad - logp.exp() * grad.sum(-1, keepdim=True)

    class NoSum(Naive):
        @staticmethod
        def forward(ctx, z):
            return solution("ch05").LogSoftmax.forward(ctx, z)

        @staticmethod
        def backward(ctx, grad):
            (logp,) = ctx.saved_tensors
            return grad - logp.exp() * grad                # BUG: p g instead of p Σg

    return [(Naive, "maximum"), (NoSum, "disagrees with central finite differences")]


def _wrong_cross_entropy():
    class NoMean(tg.Function):
        @staticmethod
        def forward(ctx, z, target):
            ctx.n = z.shape[0]
            return solution("ch05").CrossEntropy.forward(ctx, z, target)

        @staticmethod
        def backward(ctx, grad):
            (g,) = ctx.saved_tensors
            return grad * g * ctx.n, None                  # BUG: P - Y, the sum's gradient: N = 5 times too big

    return [(NoMean, "5 times the right one")]


def _wrong_numerical_vjp():
    def forward_difference(f, x, v, eps=1e-6):
        x = np.array(x, dtype=np.float64)
        out, f0 = np.zeros_like(x), np.sum(v * f(x))
        for j in range(x.size):
            x.reshape(-1)[j] += eps
            out.reshape(-1)[j] = (np.sum(v * f(x)) - f0) / eps
            x.reshape(-1)[j] -= eps
        return out

    def in_place(f, x, v, eps=1e-6):
        out = np.zeros_like(x)
        for j in range(x.size):
            x.reshape(-1)[j] += eps                        # BUG: perturbs the caller's array, never restores it
            plus = np.sum(v * f(x))
            x.reshape(-1)[j] -= 2 * eps
            out.reshape(-1)[j] = (plus - np.sum(v * f(x))) / (2 * eps)
        return out

    return [(forward_difference, "one-sided"), (in_place, "x was changed")]


def _wrong_sigmoid_twice():
    class NumpyBackward(tg.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.out = 1 / (1 + np.exp(-x))
            return ctx.out

        @staticmethod
        def backward(ctx, grad):
            return grad * tg.tensor(ctx.out * (1 - ctx.out))   # BUG for double backprop: a constant

    return [(NumpyBackward, "bare NumPy values")]


def _wrong_hvp():
    def gradient_only(f, x, v):
        (g,) = tg.grad(f(x), [x])
        return g                                       # BUG: ∇f, not H v

    def symmetric_part_missing(f, x, v):
        (g,) = tg.grad(f(x), [x], create_graph=True)
        (hv,) = tg.grad((g * tg.tensor(v)).sum(), [x])
        return hv * 0.5                                # BUG: a stray factor

    return [(gradient_only, "Hv for f"), (symmetric_part_missing, "Hv for f")]


def _wrong_conv_output_size():
    return [(lambda H, K, stride=1, padding=0, dilation=1: (H + 2 * padding - K) // stride + 1, "dilation too"),
            (lambda H, K, stride=1, padding=0, dilation=1: (H + padding - K) // stride + 1, "expected")]


def _wrong_conv2d_backward_input():
    def stride_one_formula(gy, w, x_shape, stride, padding):
        # full correlation with the flipped kernel, ignoring the stride: right only for s = 1
        K = w.shape[2]
        g = F.conv2d(tg.tensor(gy), tg.tensor(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).copy()),
                     padding=K - 1 - padding).numpy()
        return g

    return [(stride_one_formula, "stride 2")]


def _wrong_max_pool_backward():
    def assigns(x, gy, kernel_size, stride):
        k, s = kernel_size, stride
        gx = np.zeros_like(x)
        for n, c, i, j in np.ndindex(*gy.shape):
            w = x[n, c, i * s:i * s + k, j * s:j * s + k]
            p, q = np.unravel_index(np.argmax(w), w.shape)
            gx[n, c, i * s + p, j * s + q] = gy[n, c, i, j]      # BUG: = instead of +=
        return gx

    def last_max(x, gy, kernel_size, stride):
        k, s = kernel_size, stride
        gx = np.zeros_like(x)
        for n, c, i, j in np.ndindex(*gy.shape):
            w = x[n, c, i * s:i * s + k, j * s:j * s + k][::-1, ::-1]   # BUG: the last maximum wins a tie
            p, q = np.unravel_index(np.argmax(w), w.shape)
            gx[n, c, i * s + k - 1 - p, j * s + k - 1 - q] += gy[n, c, i, j]
        return gx

    return [(assigns, "+=, not ="), (last_max, "tied maxima")]


def _wrong_delta_rule():
    def no_activation_slope(X, t, weights, biases):
        dWs, dbs = solution("ch10").mlp_gradients(X, t, weights, biases)
        A1 = np.tanh(X @ weights[0].T + biases[0])
        z = A1 @ weights[1].T + biases[1] if len(weights) == 2 else None
        if z is None:
            return [d * 1.5 for d in dWs], dbs               # BUG (deeper net): scaled
        P = np.exp(z - z.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        P[np.arange(len(X)), t] -= 1
        delta = (P / len(X)) @ weights[1]                    # BUG: forgets the factor f'(z)
        return [delta.T @ X, dWs[1]], [delta.sum(0), dbs[1]]

    return [(no_activation_slope, "dW of layer 1")]


def _wrong_leaky_relu():
    class SlopeOne(tg.Function):
        @staticmethod
        def forward(ctx, x, alpha):
            ctx.save_for_backward(x)
            return np.where(x > 0, x, alpha * x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (x > 0).to(grad.dtype), None        # BUG: the ReLU's slope, 0 on the left

    return [(SlopeOne, "disagrees with central finite differences")]


def _wrong_linear_module():
    class FanOut(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.weight = nn.Parameter(tg.randn(o, i) * np.sqrt(2.0 / o))   # BUG: fan_out
            self.bias = nn.Parameter(tg.zeros(o))

        def forward(self, x):
            return x @ self.weight.T + self.bias

    class BiasFirst(FanOut):
        def __init__(self, i, o):
            nn.Module.__init__(self)
            self.bias = nn.Parameter(tg.zeros(o))
            self.weight = nn.Parameter(tg.randn(o, i) * np.sqrt(2.0 / i))

    return [(FanOut, "2/fan_out"), (BiasFirst, "['weight', 'bias']")]


def _wrong_momentum_step():
    def zero_buffer_start(theta, g, buf, lr, momentum, nesterov=False, weight_decay=0.0):
        g = g + weight_decay * theta
        buf = (1 - momentum) * g if buf is None else momentum * buf + g   # BUG: not b = g
        return theta - lr * (g + momentum * buf if nesterov else buf), buf

    def no_nesterov(theta, g, buf, lr, momentum, nesterov=False, weight_decay=0.0):
        return solution("ch11").momentum_step(theta, g, buf, lr, momentum, False, weight_decay)

    return [(zero_buffer_start, "b = g"), (no_nesterov, "Nesterov")]


def _wrong_adam_step():
    def no_bias_correction(theta, g, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        b1, b2 = betas
        g = g + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        return theta - lr * m / (np.sqrt(v) + eps), m, v

    return [(no_bias_correction, "bias correction")]


def _wrong_early_stopping():
    def best_of_all(val_losses, patience):
        _, stop = solution("ch11a").early_stopping(val_losses, patience)
        return int(np.argmin(val_losses)) + 1, stop              # BUG: counts epochs never trained

    def one_late(val_losses, patience):
        best, best_epoch, waited = np.inf, 0, 0
        for epoch, loss in enumerate(val_losses, 1):
            if loss < best:
                best, best_epoch, waited = loss, epoch, 0
            else:
                waited += 1
                if waited > patience:                           # BUG: one epoch too many
                    return best_epoch, epoch
        return best_epoch, len(val_losses)

    def ties_improve(val_losses, patience):
        best, best_epoch, waited = np.inf, 0, 0
        for epoch, loss in enumerate(val_losses, 1):
            if loss <= best:                                    # BUG: a tie resets the patience
                best, best_epoch, waited = loss, epoch, 0
            else:
                waited += 1
                if waited == patience:
                    return best_epoch, epoch
        return best_epoch, len(val_losses)

    def from_zero(val_losses, patience):
        best, stop = solution("ch11a").early_stopping(val_losses, patience)
        return best - 1, stop - 1                               # BUG: epochs counted from 0

    return [(best_of_all, "not the minimum of the whole list"), (one_late, "one epoch late"),
            (ties_improve, "a tie is not an improvement"), (from_zero, "counted from 1")]


def _wrong_train_val_split():
    def not_stratified(labels, val_fraction, seed):
        order = np.random.default_rng(seed).permutation(len(labels))   # BUG: the classes' shares drift
        k = round(val_fraction * len(labels))
        return order[k:], order[:k]

    def first_of_each_class(labels, val_fraction, seed):
        train, val = [], []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)                       # BUG: always the same examples
            k = round(val_fraction * len(members))
            val.append(members[:k])
            train.append(members[k:])
        return np.concatenate(train), np.concatenate(val)

    def with_replacement(labels, val_fraction, seed):
        val = np.random.default_rng(seed).choice(len(labels), round(val_fraction * len(labels)))   # BUG: repeats
        return np.setdiff1d(np.arange(len(labels)), val), val

    return [(not_stratified, "split each class separately"), (first_of_each_class, "does not depend on the seed"),
            (with_replacement, "appears 2 times")]


def _wrong_dropout():
    class NoScale(tg.Function):
        @staticmethod
        def forward(ctx, x, u, p):
            mask = (u >= p).astype(x.dtype)                 # BUG: not inverted
            ctx.save_for_backward(mask)
            return x * mask

        @staticmethod
        def backward(ctx, grad):
            (mask,) = ctx.saved_tensors
            return grad * mask, None, None

    class GradNotMasked(tg.Function):
        @staticmethod
        def forward(ctx, x, u, p):
            return solution("ch12").Dropout.forward(ctx, x, u, p)

        @staticmethod
        def backward(ctx, grad):
            return grad, None, None                          # BUG: gradient through dropped units too

    return [(NoScale, "1/(1 - p)"), (GradNotMasked, "disagrees with central finite differences")]


def _wrong_batch_norm():
    class Unbiased(tg.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, eps=1e-5):
            axes = (0,) + tuple(range(2, x.ndim))
            shape = (1, -1) + (1,) * (x.ndim - 2)
            xhat = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, ddof=1, keepdims=True) + eps)
            return xhat * weight.reshape(shape) + bias.reshape(shape)

    class NoMeanPath(tg.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, eps=1e-5):
            return solution("ch12").BatchNorm.forward(ctx, x, weight, bias, eps)

        @staticmethod
        def backward(ctx, grad):
            xhat, s, weight = ctx.saved_tensors
            axes, shape = ctx.axes, ctx.shape
            gx = s * grad * weight.reshape(shape)            # BUG: forgets the paths through μ and σ²
            return gx, (grad * xhat).sum(axes), grad.sum(axes)

    return [(Unbiased, "biased variance"), (NoMeanPath, "gradient of x")]


def _wrong_train_step():
    def no_zero_grad(model, optimizer, images, labels):
        loss = F.cross_entropy(model(images), labels)
        loss.backward()                                      # BUG: gradients accumulate
        optimizer.step()
        return loss.item()

    def no_step(model, optimizer, images, labels):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        return loss.item()

    def loss_after(model, optimizer, images, labels):
        solution("ch13").train_step(model, optimizer, images, labels)
        with tg.no_grad():
            return F.cross_entropy(model(images), labels).item()   # BUG: the loss after the update

    return [(no_zero_grad, "zero_grad"), (no_step, "optimizer.step()"), (loss_after, "before the update")]


def _wrong_im2col():
    def channel_last_rows(x, kh, kw, stride=1, padding=0):
        cols = solution("ch14").im2col(x, kh, kw, stride, padding)
        c = x.shape[1]
        # BUG: rows ordered (p, q, c) instead of (c, p, q)
        return cols.reshape(c, kh * kw, -1).transpose(1, 0, 2).reshape(c * kh * kw, -1)

    def no_padding(x, kh, kw, stride=1, padding=0):
        return solution("ch14").im2col(x, kh, kw, stride, 0)

    return [(channel_last_rows, "the convolution"), (no_padding, "has shape")]


def _wrong_block_max():
    if not tg.cuda.is_available():
        return []
    zero_identity, first_block_only = _wrong_kernels()
    return [(zero_identity, "-inf"), (first_block_only, "the first `threads` elements")]


def _wrong_saliency():
    def of_log_probability(model, x, target):
        xt = tg.tensor(x, requires_grad=True)
        logp = F.log_softmax(model(xt), 1)[np.arange(len(x)), target]   # BUG: the softmax mixes classes in
        (g,) = tg.grad(logp.sum(), [xt])
        return np.abs(g.numpy()).max(axis=1)

    def no_channel_max(model, x, target):
        xt = tg.tensor(x, requires_grad=True)
        (g,) = tg.grad(model(xt)[np.arange(len(x)), target].sum(), [xt])
        return np.abs(g.numpy())

    return [(of_log_probability, "the logit"), (no_channel_max, "channel axis")]


def _wrong_fgsm():
    def descends(model, x, y, eps):
        xt = tg.tensor(x, requires_grad=True)
        (g,) = tg.grad(F.cross_entropy(model(xt), tg.tensor(y), reduction="sum"), [xt])
        return np.clip(x - eps * np.sign(g.numpy()), 0, 1)    # BUG: down the loss

    def unclipped(model, x, y, eps):
        xt = tg.tensor(x, requires_grad=True)
        (g,) = tg.grad(F.cross_entropy(model(xt), tg.tensor(y), reduction="sum"), [xt])
        return x + eps * np.sign(g.numpy())

    return [(descends, "down the loss"), (unclipped, "outside [0, 1]")]


def _wrong_distillation_loss():
    def no_t_squared(zs, zt, target, T, alpha):
        q = (zt.detach() / T).softmax(1)
        kl = (q * (q.log() - (zs / T).log_softmax(1))).sum() / zs.shape[0]
        return alpha * kl + (1 - alpha) * F.cross_entropy(zs, target)

    def teacher_attached(zs, zt, target, T, alpha):
        q = (zt / T).softmax(1)                               # BUG: not detached
        kl = (q * (q.log() - (zs / T).log_softmax(1))).sum() / zs.shape[0]
        return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(zs, target)

    return [(no_t_squared, "T²"), (teacher_attached, "detach")]


WRONG = {
    "check_scalar_silu": _wrong_silu, "check_topological_order": _wrong_topological_order,
    "check_unbroadcast": _wrong_unbroadcast, "check_squared_difference": _wrong_squared_difference,
    "check_matmul": _wrong_matmul, "check_log_softmax": _wrong_log_softmax,
    "check_cross_entropy": _wrong_cross_entropy, "check_numerical_vjp": _wrong_numerical_vjp,
    "check_sigmoid_twice": _wrong_sigmoid_twice, "check_hvp": _wrong_hvp,
    "check_conv_output_size": _wrong_conv_output_size, "check_conv2d_backward_input": _wrong_conv2d_backward_input,
    "check_max_pool_backward": _wrong_max_pool_backward, "check_delta_rule": _wrong_delta_rule,
    "check_leaky_relu": _wrong_leaky_relu, "check_linear_module": _wrong_linear_module,
    "check_momentum_step": _wrong_momentum_step, "check_adam_step": _wrong_adam_step,
    "check_early_stopping": _wrong_early_stopping, "check_train_val_split": _wrong_train_val_split,
    "check_dropout": _wrong_dropout, "check_batch_norm": _wrong_batch_norm,
    "check_train_step": _wrong_train_step, "check_im2col": _wrong_im2col, "check_block_max": _wrong_block_max,
    "check_saliency": _wrong_saliency, "check_fgsm": _wrong_fgsm,
    "check_distillation_loss": _wrong_distillation_loss,
}


@pytest.mark.parametrize("checker", sorted(WRONG))
def test_wrong_solutions_fail_with_a_message(checker):
    _needs_cuda(checker)
    wrongs = WRONG[checker]()
    assert wrongs, "at least one wrong solution per checker"
    for wrong, phrase in wrongs:
        report = getattr(E, checker)(wrong)        # must not raise
        text = str(report)
        assert not report.passed, f"{checker} passed the wrong solution {wrong!r}"
        assert text.startswith("✗") and phrase in text, f"{checker}: expected {phrase!r} in:\n{text}"


def test_a_crashing_solution_is_reported_not_raised():
    def crashes(grad, shape):
        return grad.sum(axis=7)

    report = E.check_unbroadcast(crashes)
    assert not report
    assert "your code raised" in str(report) and "AxisError" in str(report)
    assert "test_exercises.py" in str(report) and "in crashes" in str(report)   # points at the learner's line


def test_a_solution_returning_nothing_is_reported():
    report = E.check_momentum_step(lambda *args, **kwargs: (None, None))
    assert not report and "got None" in str(report)


def test_report_keeps_the_default_dtype():
    before = tg.get_default_dtype()
    E.check_leaky_relu(solution("ch10a").LeakyReLU)
    assert tg.get_default_dtype() == before
