"""Chapter 16 — looking inside a CNN: reference solutions."""
import numpy as np

import tinygrad_cv as tg


def saliency(model, x, target):
    """max over channels of |∂S_t/∂x|, S_t the target logit; tg.grad leaves the parameters' .grad alone."""
    xt = tg.tensor(x, requires_grad=True)
    scores = model(xt)[np.arange(len(x)), target]     # one logit per image
    (g,) = tg.grad(scores.sum(), [xt])                # images are independent: the sum's gradient is each one's
    return np.abs(g.numpy()).max(axis=1)
