"""The CUDA twin: every contract function as ``numba.cuda`` kernels, on GPU arrays.

Same names, signatures and semantics as the reference twin; the data never
leaves the GPU. Each function lives in its family's ``cuda.py`` and works on
numba device arrays; here it is gathered as the contract lists it
(``kernels/contract.py``) and made to take the ``CudaArray``s of GPU tensors
as well: a ``CudaArray`` argument is handed to the kernel as a device array
(no copy when it is contiguous), and then the results come back as
``CudaArray``s. Device arrays in, device arrays out (what the tests and the
chapter do); an argument updated in place (the optimiser steps) that is a
view, not a whole buffer, is updated through a contiguous copy written back.

Called from here, a function first checks its arguments against the
contract's rules; the operations reach the same functions unchecked through
``kernels.backend_for``, always with ``CudaArray``s in and out. Importing this
module needs a usable GPU, or Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``),
which runs the very same kernels in Python threads.
"""
from __future__ import annotations

from ..cuda import is_cuda_array as _is_cuda_array
from ..cuda.array import from_device_array as _from_device_array
from . import contract as _contract
from .contract import checked as _checked
from .conv import cuda as _conv
from .pool import cuda as _pool
from .matmul import cuda as _matmul
from .elementwise import cuda as _elementwise
from .softmax_loss import cuda as _softmax_loss
from .norm import cuda as _norm
from .dropout import cuda as _dropout
from .optim import cuda as _optim
from .indexing import cuda as _indexing


def _adapt(impl, entry, direct):
    """``impl`` taking CudaArrays (as device arrays) and, unless ``direct`` with none given, returning CudaArrays."""
    names = list(entry.signature.parameters)
    written = frozenset(names.index(n) for n in entry.writes)

    def call(*args, **kwargs):
        on_gpu = [not direct]
        back = []
        args = [_to_kernel(a, i in written, on_gpu, back) for i, a in enumerate(args)]
        kwargs = {k: _to_kernel(v, k in entry.writes, on_gpu, back) for k, v in kwargs.items()}
        result = impl(*args, **kwargs)
        for view, whole in back:  # arguments updated in place through a contiguous copy
            view[...] = whole
        return _from_kernel(result) if on_gpu[0] else result

    call.__name__ = call.__qualname__ = impl.__name__
    call.__doc__ = impl.__doc__
    call.__wrapped__ = impl
    return call


def _to_kernel(a, written, on_gpu, back):
    if not _is_cuda_array(a):
        return a
    on_gpu[0] = True
    if written and not a._is_whole_buffer():
        whole = a.copy()
        back.append((a, whole))
        return whole.device_array()
    return a.device_array()


def _from_kernel(r):
    if r is None:  # a gradient that was not asked for, or an in-place step
        return None
    if isinstance(r, tuple):
        return tuple(_from_kernel(x) for x in r)
    return _from_device_array(r)


# conv
conv2d_forward = _checked(_conv.conv2d_forward, _adapt)
conv2d_backward_input = _checked(_conv.conv2d_backward_input, _adapt)
conv2d_backward_weight = _checked(_conv.conv2d_backward_weight, _adapt)
conv2d_backward = _checked(_conv.conv2d_backward, _adapt)
conv_transpose2d_forward = _checked(_conv.conv_transpose2d_forward, _adapt)
conv_transpose2d_backward_input = _checked(_conv.conv_transpose2d_backward_input, _adapt)
conv_transpose2d_backward_weight = _checked(_conv.conv_transpose2d_backward_weight, _adapt)

# pool
max_pool2d_forward = _checked(_pool.max_pool2d_forward, _adapt)
max_pool2d_backward = _checked(_pool.max_pool2d_backward, _adapt)
avg_pool2d_forward = _checked(_pool.avg_pool2d_forward, _adapt)
avg_pool2d_backward = _checked(_pool.avg_pool2d_backward, _adapt)

# matmul
matmul = _checked(_matmul.matmul, _adapt)
linear_forward = _checked(_matmul.linear_forward, _adapt)
linear_backward = _checked(_matmul.linear_backward, _adapt)

# elementwise
relu_forward = _checked(_elementwise.relu_forward, _adapt)
relu_backward = _checked(_elementwise.relu_backward, _adapt)

# softmax_loss
log_softmax_forward = _checked(_softmax_loss.log_softmax_forward, _adapt)
softmax_forward = _checked(_softmax_loss.softmax_forward, _adapt)
log_softmax_backward = _checked(_softmax_loss.log_softmax_backward, _adapt)
softmax_backward = _checked(_softmax_loss.softmax_backward, _adapt)
nll_loss_forward = _checked(_softmax_loss.nll_loss_forward, _adapt)
nll_loss_backward = _checked(_softmax_loss.nll_loss_backward, _adapt)
cross_entropy_forward = _checked(_softmax_loss.cross_entropy_forward, _adapt)
cross_entropy_backward = _checked(_softmax_loss.cross_entropy_backward, _adapt)

# norm
batch_norm_stats = _checked(_norm.batch_norm_stats, _adapt)
batch_norm_forward = _checked(_norm.batch_norm_forward, _adapt)
batch_norm_backward = _checked(_norm.batch_norm_backward, _adapt)

# dropout
dropout_mask = _checked(_dropout.dropout_mask, _adapt)

# optim
sgd_step = _checked(_optim.sgd_step, _adapt)
adam_step = _checked(_optim.adam_step, _adapt)

# indexing
scatter_add_along_axis = _checked(_indexing.scatter_add_along_axis, _adapt)

__all__ = list(_contract.KERNELS)  # exactly the contract's functions (tests/kernels/test_contract.py)
