"""Differentiable tensor operations, one `Function` per primitive, grouped by kind.

- ``elementwise``: arithmetic with broadcasting, activations, casts
- ``reduce``: sum, amax, amin
- ``movement``: reshape, permute, indexing, gather, concatenate, pad
- ``matmul``: (batched) matrix product
- ``linear``: the fully connected layer x Wᵀ + b as one fused node
- ``softmax``: softmax, log_softmax
- ``loss``: negative log-likelihood, and cross-entropy as one fused node
- ``conv``, ``pool``: convolution, transposed convolution, max and average pooling
- ``nn``: batch normalisation (training mode) as one fused node
- ``device``: moving a tensor between host and GPU

A ``Function`` holds the maths of its operation: the forward formula, the
gradient, and how the gradient is built from other operations when
``create_graph`` asks for gradients of gradients. Where the arithmetic is a
kernel (``tinygrad_cv/kernels/contract.py`` lists them), it calls
``kernels.backend_for(x).<name>(...)``, which picks the twin for the data's
device; an operation never asks which device its arrays are on.
"""
