"""Chapter 11a — generalisation: reference solutions."""
import numpy as np


def early_stopping(val_losses, patience):
    """(best_epoch, stop_epoch), epochs from 1: stop after `patience` epochs in a row without a strictly lower loss."""
    best, best_epoch, waited = np.inf, 0, 0
    for epoch, loss in enumerate(val_losses, 1):
        if loss < best:                      # strictly lower: a tie is not an improvement
            best, best_epoch, waited = loss, epoch, 0
        else:
            waited += 1
            if waited == patience:
                return best_epoch, epoch
    return best_epoch, len(val_losses)


def train_val_split(labels, val_fraction, seed):
    """(train_idx, val_idx): each class sends round(val_fraction × its count) of its examples, drawn at random."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    train_parts, val_parts = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(val_fraction * len(members)))
        val_parts.append(members[:k])
        train_parts.append(members[k:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(val_parts))
