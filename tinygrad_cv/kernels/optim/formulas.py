r"""Adam's update of one element, written once for the CPU and the CUDA twin.

:func:`adam_update` returns a plain Python function of scalars. ``cpu.py``
compiles it with ``numba.njit`` and calls it in its sequential loop;
``cuda.py`` compiles it with ``numba.cuda.jit(device=True)`` and calls it in
its kernel, one thread per element. So both twins run the same operations in
the same order, and a change to the formula is made once. The square root is
the one operation the targets spell differently (NumPy's on the CPU,
libdevice's on a GPU, NumPy's again in the simulator, where ``math.sqrt``
would compute a float32 in float64), so each twin passes its own.

One element of an Adam / AdamW step, the scalars in the arrays' dtype
(``step_size`` = γ / (1 - β₁ᵗ), ``bc2_sqrt`` = √(1 - β₂ᵗ), ``decay`` = 1 - γλ)::

    d ← -g if maximize else g
    θ ← θ · decay  (AdamW)    or    d ← d + λ θ  (Adam)
    m ← β₁ m + (1 - β₁) d          v ← β₂ v + (1 - β₂) d²
    v̂max ← max(v̂max, v), NaN winning as in np.maximum  (amsgrad; v̂max is then v's stand-in below)
    θ ← θ - step_size · m / (√v / bc2_sqrt + ε)

(PyTorch's arrangement: ε is added after √v is divided by √(1 - β₂ᵗ).)
"""
from __future__ import annotations


def adam_update(sqrt):
    """The per-element Adam update, with ``sqrt`` as the square root: a function to compile (see above)."""

    def adam_update(p, g, m, v, vmax, wd, decay, has_wd, decoupled, amsgrad, maximize,
                    beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps):
        """The new (θ, m, v, v̂max) of one element; ``vmax`` is only read, and changed, with ``amsgrad``."""
        d = g
        if maximize:
            d = -d
        if has_wd:
            if decoupled:
                p = p * decay  # AdamW: shrink the weights, the gradient is left alone
            else:
                d = d + wd * p  # Adam: L2 penalty folded into the gradient
        m = beta1 * m + one_minus_beta1 * d
        v = beta2 * v + one_minus_beta2 * (d * d)
        vhat = v
        if amsgrad:
            if v > vmax or v != v:  # np.maximum: NaN wins
                vmax = v
            vhat = vmax
        denom = sqrt(vhat) / bc2_sqrt + eps
        return p - step_size * (m / denom), m, v, vmax

    return adam_update
