"""Differentiable tensor operations, one `Function` per primitive, grouped by kind.

- ``elementwise``: arithmetic with broadcasting, activations, casts
- ``reduce``: sum, amax, amin
- ``movement``: reshape, permute, indexing, gather, concatenate, pad
- ``matmul``: (batched) matrix product
- ``softmax``: softmax, log_softmax
- ``loss``: negative log-likelihood
"""
