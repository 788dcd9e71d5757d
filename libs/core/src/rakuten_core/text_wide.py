"""The wide part of the model, computed sparse: n-gram counts -> sublinear TF-IDF -> Dense.

A listing has about 1,200 distinct n-grams out of the 120,000 of a real model's vocabularies,
so the counts are kept sparse (:class:`SparseCounts`, SciPy's CSR layout in plain NumPy, so
that the serving and prediction images need no SciPy) and, when the bundle's export took the
wide part out of the ONNX graph (``TextSpec.wide``), its sublinear TF-IDF and Dense layer are
computed here on the n-grams present only (:class:`WideLayer`): as dense ``(N, V)`` tensors in
ONNX Runtime they were three quarters of a model call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rakuten_core.text_spec import WideSpec

_L2_EPSILON = 1e-12  # tf.math.l2_normalize's


@dataclass(frozen=True, slots=True)
class SparseCounts:
    """A ``(rows, size)`` float32 matrix in CSR form (SciPy's ``csr_matrix`` layout): row ``r``
    holds ``data[indptr[r]:indptr[r + 1]]`` at the columns ``indices[indptr[r]:indptr[r + 1]]``,
    sorted and distinct. Only what the wide part and the dense inputs need."""

    data: NDArray[np.float32]
    indices: NDArray[np.int64]
    indptr: NDArray[np.int64]
    shape: tuple[int, int]

    def row_of(self) -> NDArray[np.int64]:
        """The row of each stored value."""
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))

    def toarray(self) -> NDArray[np.float32]:
        out = np.zeros(self.shape, dtype=np.float32)
        out[self.row_of(), self.indices] = self.data
        return out


def sparse_counts(cells: NDArray[np.int64], rows: int, size: int) -> SparseCounts:
    """How often each ``row * size + index`` occurs in ``cells``, as a ``(rows, size)`` matrix."""
    keys, counts = np.unique(cells, return_counts=True)  # sorted: by row, then by index
    row, index = np.divmod(keys.astype(np.int64, copy=False), size)
    indptr = np.searchsorted(row, np.arange(rows + 1)).astype(np.int64, copy=False)
    return SparseCounts(counts.astype(np.float32), index, indptr, (rows, size))


class WideLayer:
    """Sparse counts -> the wide Dense layer's output, as the Keras model computes it.

    ``SublinearTfIdf`` (:mod:`rakuten_train.layers`): ``(1 + ln count) * idf`` for each n-gram
    present, each role's row scaled to unit L2 norm; then ``activation(x @ kernel + bias)``. The
    product reads only the kernel rows of the n-grams present (about 1 % of a real model's): the
    roles' entries are merged row by row, then per row the kernel rows of its n-grams are
    gathered and multiplied by its weights in one BLAS matrix-vector product. On a real model's
    shapes that is as fast as SciPy's CSR product, and several times faster than one gather of
    the whole batch summed with ``np.add.reduceat`` (bench/text_vectors_numpy.py).
    """

    def __init__(
        self,
        spec: WideSpec,
        idf: Mapping[str, NDArray[np.float32]],
        kernel: NDArray[np.float32],
        bias: NDArray[np.float32],
    ) -> None:
        sizes = [idf[role].shape[0] if role in idf else 0 for role in spec.parts]
        if 0 in sizes or kernel.ndim != 2 or kernel.shape[0] != sum(sizes):
            raise ValueError(f"kernel {kernel.shape} does not match the IDF sizes {sizes}")
        if bias.shape != (kernel.shape[1],):
            raise ValueError(f"bias {bias.shape} does not match kernel {kernel.shape}")
        self.spec = spec
        self.units = int(kernel.shape[1])
        offsets = np.cumsum([0, *sizes[:-1]]).tolist()
        self._parts = [
            (role, idf[role], offset) for role, offset in zip(spec.parts, offsets, strict=True)
        ]
        self._kernel = kernel  # the roles' rows one after the other, in spec.parts order
        self._bias = bias

    @classmethod
    def from_arrays(cls, spec: WideSpec, arrays: Mapping[str, Any]) -> WideLayer:
        """From the arrays of ``serving/wide.npz``: ``idf_<role>``, ``kernel``, ``bias``."""
        idf: dict[str, NDArray[np.float32]] = {
            role: np.asarray(arrays[f"idf_{role}"], dtype=np.float32) for role in spec.parts
        }
        kernel = np.ascontiguousarray(arrays["kernel"], dtype=np.float32)
        return cls(spec, idf, kernel, np.asarray(arrays["bias"], dtype=np.float32))

    @classmethod
    def load(cls, path: Path, spec: WideSpec) -> WideLayer:
        arrays = np.load(path, allow_pickle=False)
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with arrays:
            return cls.from_arrays(spec, arrays)

    def __call__(self, counts: Mapping[str, SparseCounts]) -> NDArray[np.float32]:
        rows = next(iter(counts.values())).shape[0]
        # one CSR matrix over the whole kernel: row r holds each role's entries in turn, so a
        # row costs one gather and one product (the Python loop, not the arithmetic, is what a
        # small model's batch spends its time in)
        indptr = np.sum([counts[role].indptr for role, _, _ in self._parts], axis=0)
        weights = np.empty(int(indptr[-1]), dtype=np.float32)
        columns = np.empty(int(indptr[-1]), dtype=np.int64)
        free = indptr[:-1].copy()  # where each row's next role's entries go
        for role, idf, offset in self._parts:
            matrix = counts[role]
            tf_idf = (1.0 + np.log(matrix.data, dtype=np.float32)) * idf[matrix.indices]
            row_of = matrix.row_of()
            norms = np.bincount(row_of, weights=tf_idf * tf_idf, minlength=rows)
            scale = (1.0 / np.sqrt(np.maximum(norms, _L2_EPSILON))).astype(np.float32)
            at = np.arange(tf_idf.size) + (free - matrix.indptr[:-1])[row_of]
            weights[at] = tf_idf * scale[row_of]
            columns[at] = matrix.indices + offset
            free += np.diff(matrix.indptr)
        out = np.zeros((rows, self.units), dtype=np.float32)
        bounds = indptr.tolist()
        kernel = self._kernel
        for row, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if start < stop:  # a row without any n-gram keeps zeros
                # take + dot into the row: half the overhead of kernel[...] and a temporary
                np.dot(weights[start:stop], kernel.take(columns[start:stop], axis=0), out=out[row])
        out += self._bias
        if self.spec.activation == "relu":
            np.maximum(out, 0.0, out=out)
        return out
