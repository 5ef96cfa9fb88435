"""Mini-batch iteration over array-backed datasets.

A dataset here is anything with ``len()`` whose ``__getitem__`` accepts an
integer index array and returns a tuple of arrays for those samples
(``MNIST``, ``FashionMNIST``, ``ArrayDataset``).  The loader never touches
samples one by one: each batch is a single fancy-indexing call, so an epoch
over MNIST costs a few milliseconds of indexing.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from .transforms import ToFloat

__all__ = ["ArrayDataset", "TensorDataset", "DataLoader"]


class ArrayDataset:
    """Several arrays that share their first (sample) axis.

    ``ArrayDataset(x, y)[idx]`` returns ``(x[idx], y[idx])`` for an int,
    a slice or an index array.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        self.arrays = tuple(np.asarray(a) for a in arrays)
        n = len(self.arrays[0]) if self.arrays[0].ndim else None
        for i, a in enumerate(self.arrays):
            if a.ndim == 0 or len(a) != n:
                raise ValueError(
                    f"all arrays need the same first dimension; array 0 has shape "
                    f"{self.arrays[0].shape}, array {i} has shape {a.shape}"
                )

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        return f"ArrayDataset({shapes})"


# The familiar name for the same thing.
TensorDataset = ArrayDataset


class DataLoader:
    """Iterate over a dataset in mini-batches of NumPy arrays.

    ``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False,
    generator=None, seed=None, transform=None, to_float=True)``

    Each iteration yields a tuple of arrays, ``(images, labels)`` for the
    image datasets.  What happens to a batch, in order:

    1. ``dataset[indices]``: one fancy-indexing call for the whole batch.
    2. ``to_float`` (default on): if the first array is uint8 it is turned into
       float32 in [0, 1], and (N, H, W) becomes (N, 1, H, W), via
       :class:`~tinygrad_cv.data.transforms.ToFloat`.  Other dtypes pass
       through untouched, so a dataset whose own ``transform`` already made
       floats is not converted twice.  ``to_float=False`` yields raw arrays.
    3. ``transform`` (optional) is applied to the first array, e.g.
       ``Compose([RandomShift(2, rng=...), Normalize(0.1307, 0.3081)])``.

    Shuffling draws a fresh permutation from the loader's Generator at the
    start of every epoch (every ``iter()``), so epochs differ but the whole
    sequence is reproducible from ``seed``.  ``generator`` passes in an
    existing ``numpy.random.Generator`` instead.  Every sample appears exactly
    once per epoch; the last batch is smaller unless ``drop_last``.
    ``len(loader)`` is the number of batches per epoch.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: np.random.Generator | None = None,
        seed: int | None = None,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        to_float: bool = True,
    ):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if generator is not None and seed is not None:
            raise ValueError("pass either generator or seed, not both")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator if generator is not None else np.random.default_rng(seed)
        self.transform = transform
        self.to_float = bool(to_float)
        self._to_float = ToFloat()

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch_indices(self) -> np.ndarray:
        """The sample order of one epoch (draws from the Generator when shuffling)."""
        n = len(self.dataset)
        return self.generator.permutation(n) if self.shuffle else np.arange(n)

    def _make_batch(self, indices: np.ndarray) -> tuple:
        """Fetch and prepare one batch; the single place batches are produced."""
        arrays = self.dataset[indices]
        if not isinstance(arrays, tuple):
            arrays = (arrays,)
        first, rest = arrays[0], arrays[1:]
        if self.to_float and isinstance(first, np.ndarray) and first.dtype == np.uint8:
            first = self._to_float(first)
        if self.transform is not None:
            first = self.transform(first)
        return (first, *rest)

    def __iter__(self) -> Iterator[tuple]:
        order = self.epoch_indices()
        n_batches = len(self)
        bs = self.batch_size
        for b in range(n_batches):
            yield self._make_batch(order[b * bs:(b + 1) * bs])

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last})"
        )
