"""Chapter 17 — adversarial examples: reference solutions."""
import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F


def fgsm(model, x, y, eps):
    """One step of size eps up the sign of the input gradient of the summed cross-entropy, clipped to [0, 1]."""
    xt = tg.tensor(x, requires_grad=True)
    loss = F.cross_entropy(model(xt), tg.tensor(y), reduction="sum")
    (g,) = tg.grad(loss, [xt])
    return np.clip(x + eps * np.sign(g.numpy()), 0.0, 1.0)
