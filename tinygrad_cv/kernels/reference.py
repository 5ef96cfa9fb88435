"""The reference twin: every contract function in readable NumPy that spells out its formula.

The oracle the fast twins are tested against and the text the chapters
quote; slow (Python loops over output positions), so for small shapes. Each
function lives in its family's ``reference.py`` (``kernels/<family>/``) and
is gathered here as the contract lists it (``kernels/contract.py``). Called
from here, a function first checks its arguments against the contract's
rules; the operations reach the same functions unchecked through
``kernels.backend_for`` (their public API has checked them already).

Use it for everything by switching the active backend::

    with tinygrad_cv.kernels.use_backend("reference"):
        ...   # the same code, run on the oracle
"""
from __future__ import annotations

from . import contract as _contract
from .contract import checked as _checked
from .conv import reference as _conv
from .pool import reference as _pool
from .matmul import reference as _matmul
from .elementwise import reference as _elementwise
from .softmax_loss import reference as _softmax_loss
from .norm import reference as _norm
from .dropout import reference as _dropout
from .optim import reference as _optim
from .indexing import reference as _indexing

# conv
conv2d_forward = _checked(_conv.conv2d_forward)
conv2d_backward_input = _checked(_conv.conv2d_backward_input)
conv2d_backward_weight = _checked(_conv.conv2d_backward_weight)
conv2d_backward = _checked(_conv.conv2d_backward)
conv_transpose2d_forward = _checked(_conv.conv_transpose2d_forward)
conv_transpose2d_backward_input = _checked(_conv.conv_transpose2d_backward_input)
conv_transpose2d_backward_weight = _checked(_conv.conv_transpose2d_backward_weight)

# pool
max_pool2d_forward = _checked(_pool.max_pool2d_forward)
max_pool2d_backward = _checked(_pool.max_pool2d_backward)
avg_pool2d_forward = _checked(_pool.avg_pool2d_forward)
avg_pool2d_backward = _checked(_pool.avg_pool2d_backward)

# matmul
matmul = _checked(_matmul.matmul)
linear_forward = _checked(_matmul.linear_forward)
linear_backward = _checked(_matmul.linear_backward)

# elementwise
relu_forward = _checked(_elementwise.relu_forward)
relu_backward = _checked(_elementwise.relu_backward)

# softmax_loss
log_softmax_forward = _checked(_softmax_loss.log_softmax_forward)
softmax_forward = _checked(_softmax_loss.softmax_forward)
log_softmax_backward = _checked(_softmax_loss.log_softmax_backward)
softmax_backward = _checked(_softmax_loss.softmax_backward)
nll_loss_forward = _checked(_softmax_loss.nll_loss_forward)
nll_loss_backward = _checked(_softmax_loss.nll_loss_backward)
cross_entropy_forward = _checked(_softmax_loss.cross_entropy_forward)
cross_entropy_backward = _checked(_softmax_loss.cross_entropy_backward)

# norm
batch_norm_stats = _checked(_norm.batch_norm_stats)
batch_norm_forward = _checked(_norm.batch_norm_forward)
batch_norm_backward = _checked(_norm.batch_norm_backward)

# dropout
dropout_mask = _checked(_dropout.dropout_mask)

# optim
sgd_step = _checked(_optim.sgd_step)
adam_step = _checked(_optim.adam_step)

# indexing
scatter_add_along_axis = _checked(_indexing.scatter_add_along_axis)

__all__ = list(_contract.KERNELS)  # exactly the contract's functions (tests/kernels/test_contract.py)
