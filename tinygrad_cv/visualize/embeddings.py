"""Representations of a data set: each layer's features for many images, their 2-D embeddings (PCA,
t-SNE), and how well they separate the classes (k-NN vote, linear probe), layer after layer."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import autograd
from ._common import _evaluating, _extractor, _images, _to_model

__all__ = [
    "layer_features", "pca", "tsne", "knn_accuracy", "linear_probe_accuracy", "layer_separability",
]


# =====================================================================================================
# Representations of a data set
# =====================================================================================================
def layer_features(model, layers, images, batch_size=256):
    """Each layer's output for every image, flattened: an ``OrderedDict`` name -> (N, D) array.

    The name ``"input"`` (when it is not a layer of the model) stands for the images themselves.
    """
    images = _images(images, "images")
    layers = list(layers)
    if not layers:
        raise ValueError("layer_features needs at least one layer name")
    named = dict(model.named_modules())
    real = [name for name in layers if not (name == "input" and name not in named)]
    fx = _extractor(model, real) if real else None
    parts = {name: [] for name in real}
    if fx is not None:
        with _evaluating(model), autograd.no_grad():
            for start in range(0, len(images), batch_size):
                out = fx(_to_model(images[start:start + batch_size], model))
                for name in real:
                    a = out[name].detach().cpu().numpy()
                    parts[name].append(a.reshape(len(a), -1))
    result = OrderedDict()
    for name in layers:
        result[name] = images.reshape(len(images), -1) if name not in parts else np.concatenate(parts[name])
    return result


def pca(features, n_components=2):
    r"""Principal component scores of the rows of ``features`` (N, D) -> (N, n_components), by numpy's SVD.

    With :math:`X_c = X - \bar x` (rows centred) and :math:`X_c = U \Sigma V^\top`,
    the scores are :math:`X_c V_{:k} = U_{:k} \Sigma_{:k}`. Each component's sign
    is fixed so that its largest-magnitude score is positive (SVD leaves it free).
    """
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"pca expects features of shape (N, D) with N >= 2, got {X.shape}")
    k = int(n_components)
    if not 1 <= k <= min(X.shape):
        raise ValueError(f"n_components must be between 1 and min(N, D) = {min(X.shape)}, got {n_components}")
    Xc = X - X.mean(axis=0)
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    scores = U[:, :k] * S[:k]
    flip = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    return scores * np.where(flip == 0, 1, flip)


def tsne(features, n_components=2, perplexity=30.0, seed=0):
    """A t-SNE embedding (van der Maaten & Hinton) of the rows of ``features``, by scikit-learn (optional)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as e:
        raise ImportError("tsne needs scikit-learn, an optional dependency: pip install scikit-learn "
                          "(pca needs nothing extra)") from e
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"tsne expects features of shape (N, D), got {X.shape}")
    perplexity = min(float(perplexity), (len(X) - 1) / 3)  # scikit-learn requires perplexity < N
    return TSNE(n_components=n_components, perplexity=perplexity, init="pca", random_state=seed).fit_transform(X)


def _check_split(train_x, train_y, test_x, test_y):
    train_x, test_x = np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64)
    train_y, test_y = np.asarray(train_y).reshape(-1), np.asarray(test_y).reshape(-1)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, D) arrays with the same D, got {train_x.shape} and {test_x.shape}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y) or len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("each feature array needs one label per row, and neither split may be empty")
    return train_x, train_y.astype(np.int64), test_x, test_y.astype(np.int64)


def knn_accuracy(train_x, train_y, test_x, test_y, k=5):
    """Accuracy of the ``k``-nearest-neighbour vote (Euclidean distance) on the test rows.

    Ties between classes go to the class of the nearest neighbour among them.
    """
    train_x, train_y, test_x, test_y = _check_split(train_x, train_y, test_x, test_y)
    k = int(k)
    if not 1 <= k <= len(train_x):
        raise ValueError(f"k must be between 1 and the number of training rows ({len(train_x)}), got {k}")
    d = (test_x ** 2).sum(1)[:, None] - 2 * test_x @ train_x.T + (train_x ** 2).sum(1)[None, :]
    nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
    votes = np.zeros((len(test_x), int(max(train_y.max(), test_y.max())) + 1))
    for rank in range(k):
        # one vote each, plus a tie-breaker smaller than a vote that favours nearer neighbours
        np.add.at(votes, (np.arange(len(test_x)), train_y[nearest[:, rank]]), 1 + (k - rank) / (k * (k + 1)))
    return float((votes.argmax(1) == test_y).mean())


def _ridge(A, Y, lambdas):
    """Ridge solutions W(λ) = argmin ||A W - Y||² + λ||W||² for each λ, from one thin SVD A = U S Vᵀ.

    W(λ) = V diag(s / (s² + λ)) Uᵀ Y — whichever of N and D is larger, the SVD costs
    min(N, D)² max(N, D) once, and every λ after it is a rescaling.
    """
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    UtY = U.T @ Y
    return [Vt.T @ ((s / (s * s + lam))[:, None] * UtY) for lam in lambdas]


_PROBE_L2 = tuple(10.0 ** np.arange(-2, 6))


def linear_probe_accuracy(train_x, train_y, test_x, test_y, l2=None, folds=3, seed=0):
    r"""Accuracy on the test rows of a linear classifier fitted to the training rows (a ridge-regression "probe").

    Features are standardised with the training rows' mean and deviation;
    with one-hot targets :math:`Y` centred by their training mean :math:`\bar y`,

    .. math:: W = \arg\min_W \lVert X W - (Y - \bar y) \rVert^2 + \lambda \lVert W \rVert^2,
              \qquad \hat c(x) = \arg\max_c\, (x W + \bar y)_c

    (the intercept :math:`\bar y` is not penalised). ``l2=None`` chooses
    :math:`\lambda` from :math:`10^{-2}, \ldots, 10^{5}` by ``folds``-fold
    cross-validation on the training rows alone (the largest of the best, on
    ties); the test rows are only used for the one accuracy returned.
    """
    train_x, train_y, test_x, test_y = _check_split(train_x, train_y, test_x, test_y)
    n_classes = int(max(train_y.max(), test_y.max())) + 1

    def fit(x, y, lambdas):
        mu, sd = x.mean(0), x.std(0)
        sd = np.where(sd > 0, sd, 1.0)
        Y = np.eye(n_classes)[y]
        ybar = Y.mean(0)
        Ws = _ridge((x - mu) / sd, Y - ybar, lambdas)
        return [lambda z, W=W: ((z - mu) / sd) @ W + ybar for W in Ws]

    if l2 is None:
        order = np.random.default_rng(seed).permutation(len(train_x))
        parts = np.array_split(order, int(folds))
        if int(folds) < 2 or min(len(p) for p in parts) == 0:
            raise ValueError(f"cross-validation needs 2 <= folds <= {len(train_x)} training rows, got {folds}")
        correct = np.zeros(len(_PROBE_L2))
        for k, held in enumerate(parts):
            rest = np.concatenate([p for m, p in enumerate(parts) if m != k])
            for i, predict in enumerate(fit(train_x[rest], train_y[rest], _PROBE_L2)):
                correct[i] += (predict(train_x[held]).argmax(1) == train_y[held]).sum()
        l2 = _PROBE_L2[np.flatnonzero(correct == correct.max())[-1]]
    (predict,) = fit(train_x, train_y, [float(l2)])
    return float((predict(test_x).argmax(1) == test_y).mean())


def layer_separability(model, layers, images, labels, holdout=0.5, method="knn", k=5, seed=0, batch_size=256):
    """How well each layer's representation separates the classes: an ``OrderedDict`` name -> accuracy.

    The images are split at random (``seed``) into a fitting part and a
    held-out part (the fraction ``holdout``); a k-NN vote (``method="knn"``)
    or a linear probe (``"linear"``) is fitted on the first and scored on the
    second. ``"input"`` in ``layers`` measures the raw pixels.
    """
    if method not in ("knn", "linear"):
        raise ValueError(f"method must be 'knn' or 'linear', got {method!r}")
    labels = np.asarray(labels).reshape(-1)
    images = _images(images, "images")
    if len(labels) != len(images):
        raise ValueError(f"need one label per image: {len(images)} images, {len(labels)} labels")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1), got {holdout}")
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = max(1, int(round(holdout * len(images))))
    test, fit = order[:n_test], order[n_test:]
    feats = layer_features(model, layers, images, batch_size)
    result = OrderedDict()
    for name, f in feats.items():
        if method == "knn":
            result[name] = knn_accuracy(f[fit], labels[fit], f[test], labels[test], k)
        else:
            result[name] = linear_probe_accuracy(f[fit], labels[fit], f[test], labels[test])
    return result
