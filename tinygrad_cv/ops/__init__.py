"""Differentiable tensor operations, one `Function` per primitive, grouped by kind.

- ``elementwise``: arithmetic with broadcasting, activations, casts
- ``reduce``: sum, amax, amin
- ``movement``: reshape, permute, indexing, gather, concatenate, pad
- ``matmul``: (batched) matrix product
- ``linear``: the fully connected layer x Wᵀ + b as one fused node
- ``softmax``: softmax, log_softmax
- ``loss``: negative log-likelihood
"""
