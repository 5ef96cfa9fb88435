"""Convolution and transposed convolution: forward, input gradient, weight gradient (chapter 8).

The twins (formulas and shapes: ``kernels/contract.py``, family "conv"):

* ``reference.py`` - the sums written out in NumPy, the oracle;
* ``cpu.py`` - the entry points and the rule that picks a method per pass,
  with the measurements behind it; the methods are ``cpu_direct.py``
  (register-blocked flat loops at stride 1, per-plane loops for strides),
  ``cpu_gemm.py`` (im2col / col2im around BLAS), both reading the padded
  layout of ``cpu_layout.py``, and ``cpu_winograd.py`` (F(2x2, 3x3) for
  3x3 stride-1 layers with 64-128 channels);
* ``cuda.py`` - one GPU thread per output element, gathers instead of scatters.

Transposed convolution is the adjoint of convolution, so every twin builds
its three functions from the convolution's three with roles swapped.
"""
