r"""Autograders for the coding exercises at the end of the chapters in ``docs/``.

Each ``check_<exercise>(solution)`` takes what the exercise asks you to write
(a `Function` subclass, a NumPy function, a `Module` class, a CUDA kernel)
and returns a :class:`Report`. It never raises because an answer is wrong:
the report says which property failed, with numbers — the wrong value and
where, or the largest disagreement between your gradient and central finite
differences and at which index — and often a hint. Print it::

    from tinygrad_cv.exercises import check_leaky_relu
    print(check_leaky_relu(MyLeakyReLU))      # ✓ leaky_relu: 3 checks passed (alpha = 0.1; ...)
    assert check_leaky_relu(MyLeakyReLU)      # a Report is truthy when it passed

How the checks work. Gradients are checked in float64 against central
differences, the way :func:`tinygrad_cv.gradcheck` does it (chapter 6): for
a random upstream gradient :math:`v`, the backward pass gives
:math:`v^\top J`, and :func:`tinygrad_cv.numerical_grad` estimates every
entry of it as

.. math::  (v^\top J)_j \approx \frac{v^\top f(x + \varepsilon e_j) - v^\top f(x - \varepsilon e_j)}{2\varepsilon},
           \qquad \varepsilon = 10^{-6},

good to about ten digits. A random :math:`v` (never all ones) catches a
backward that forgets to multiply by its upstream gradient. Inputs are drawn
away from kinks (ReLU at 0) and ties (equal values in a max-pool window),
where finite differences see two slopes. Kernels (pooling, convolution) are
compared with the reference twin :mod:`tinygrad_cv.kernels.reference`, the
optimiser steps with :mod:`tinygrad_cv.optim`, the attacks and maps with the
library's own :mod:`tinygrad_cv.adversarial` and :mod:`tinygrad_cv.visualize`.

The reference solutions live in ``docs/solutions/``; ``tests/test_exercises.py``
runs every checker on them (they must pass) and on deliberately wrong
solutions (they must fail, with the expected message).
"""
from __future__ import annotations

from ._grader import Report  # noqa: F401  (re-exported)
from .cnn import (  # noqa: F401  (re-exported)
    check_adam_step,
    check_batch_norm,
    check_conv2d_backward_input,
    check_conv_output_size,
    check_delta_rule,
    check_dropout,
    check_leaky_relu,
    check_linear_module,
    check_max_pool_backward,
    check_momentum_step,
)
from .engine import (  # noqa: F401  (re-exported)
    check_cross_entropy,
    check_hvp,
    check_log_softmax,
    check_matmul,
    check_numerical_vjp,
    check_scalar_silu,
    check_sigmoid_twice,
    check_squared_difference,
    check_topological_order,
    check_unbroadcast,
)
from .generalisation import (  # noqa: F401  (re-exported)
    check_early_stopping,
    check_train_val_split,
)
from .practice import (  # noqa: F401  (re-exported)
    check_block_max,
    check_distillation_loss,
    check_fgsm,
    check_im2col,
    check_saliency,
    check_train_step,
)

__all__ = [
    "Report",
    # chapter 1-2: the Scalar engine and its graph
    "check_scalar_silu", "check_topological_order",
    # chapter 3-5: tensors, matmul, softmax
    "check_unbroadcast", "check_squared_difference", "check_matmul", "check_log_softmax", "check_cross_entropy",
    # chapter 6-7: gradient checking, higher order
    "check_numerical_vjp", "check_sigmoid_twice", "check_hvp",
    # chapter 8-9: convolution, pooling
    "check_conv_output_size", "check_conv2d_backward_input", "check_max_pool_backward",
    # chapter 10, 10a: MLP, modules
    "check_delta_rule", "check_leaky_relu", "check_linear_module",
    # chapter 11-13: optimisers, generalisation, regularisation, training
    "check_momentum_step", "check_adam_step", "check_early_stopping", "check_train_val_split",
    "check_dropout", "check_batch_norm", "check_train_step",
    # chapter 14-15: making it fast, the GPU
    "check_im2col", "check_block_max",
    # chapter 16-18: looking inside, attacks, distillation
    "check_saliency", "check_fgsm", "check_distillation_loss",
]
