"""Independent NumPy re-derivations of PyTorch's optimiser algorithms (from its documented pseudo-code).

One function per algorithm: ``ref(params, grads_per_step, **options)`` runs
all steps on float64 copies and returns the parameter trajectory. They are
written as straight transcriptions of the maths, with no in-place tricks, so
they share nothing with the implementations under test.
"""
import numpy as np


def sgd(params, grads, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    theta = [p.copy() for p in params]
    buf = [None] * len(theta)
    out = []
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            g = -g if maximize else g
            if weight_decay:
                g = g + weight_decay * theta[i]
            if momentum:
                buf[i] = g if buf[i] is None else momentum * buf[i] + (1 - dampening) * g
                g = g + momentum * buf[i] if nesterov else buf[i]
            theta[i] = theta[i] - lr * g
        out.append([t.copy() for t in theta])
    return out


def adam(params, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
         decoupled=False):
    b1, b2 = betas
    theta = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    vmax = [np.zeros_like(p) for p in params]
    out = []
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            g = -g if maximize else g
            if weight_decay:
                if decoupled:
                    theta[i] = theta[i] * (1 - lr * weight_decay)
                else:
                    g = g + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g**2
            m_hat = m[i] / (1 - b1**t)
            if amsgrad:
                vmax[i] = np.maximum(vmax[i], v[i])
                v_used = vmax[i]
            else:
                v_used = v[i]
            # PyTorch: ε added to √v / √(1 - β₂ᵗ), i.e. to √v̂
            theta[i] = theta[i] - lr * m_hat / (np.sqrt(v_used / (1 - b2**t)) + eps)
        out.append([x.copy() for x in theta])
    return out


def adamw(params, grads, weight_decay=1e-2, **kw):
    return adam(params, grads, weight_decay=weight_decay, decoupled=True, **kw)


def adagrad(params, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
            maximize=False):
    theta = [p.copy() for p in params]
    s = [np.full_like(p, initial_accumulator_value) for p in params]
    out = []
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            g = -g if maximize else g
            if weight_decay:
                g = g + weight_decay * theta[i]
            rate = lr / (1 + (t - 1) * lr_decay)
            s[i] = s[i] + g * g
            theta[i] = theta[i] - rate * g / (np.sqrt(s[i]) + eps)
        out.append([x.copy() for x in theta])
    return out


def rmsprop(params, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
            maximize=False):
    theta = [p.copy() for p in params]
    v = [np.zeros_like(p) for p in params]
    gbar = [np.zeros_like(p) for p in params]
    b = [np.zeros_like(p) for p in params]
    out = []
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            g = -g if maximize else g
            if weight_decay:
                g = g + weight_decay * theta[i]
            v[i] = alpha * v[i] + (1 - alpha) * g * g
            if centered:
                gbar[i] = alpha * gbar[i] + (1 - alpha) * g
                denom = np.sqrt(v[i] - gbar[i] ** 2) + eps
            else:
                denom = np.sqrt(v[i]) + eps
            if momentum > 0:
                b[i] = momentum * b[i] + g / denom
                theta[i] = theta[i] - lr * b[i]
            else:
                theta[i] = theta[i] - lr * g / denom
        out.append([x.copy() for x in theta])
    return out
