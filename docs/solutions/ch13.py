"""Chapter 13 — LeNet-5 from data to checkpoint: reference solutions."""
import tinygrad_cv.functional as F


def train_step(model, optimizer, images, labels):
    """Forward, loss, zero_grad, backward, step; the loss before the update."""
    loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad()        # gradients accumulate otherwise
    loss.backward()
    optimizer.step()
    return loss.item()
