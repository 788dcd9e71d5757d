"""The NumPy sparse counts and wide product against SciPy's CSR, which they replace in serving.

SciPy is a dev dependency only: it is the reference here, and serving must not import it.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Literal

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import sparse

from rakuten_core.text_spec import TextSpec, Vocabulary, WideSpec
from rakuten_core.text_vectors import TextVectors, _weigh
from rakuten_core.text_wide import SparseCounts, WideLayer, sparse_counts

SIZES = {"words": 301, "chars": 777}
EMPTY_ROWS = {"words": {0, 4}, "chars": {0, 5, 9}}  # row 0 empty in both roles, the last in one


def _cells(rng: np.random.Generator, rows: int, size: int, empty: set[int]) -> NDArray[np.int64]:
    """Cells ``row * size + index``, repeated (counts above 1), unsorted, rows in ``empty``
    left without any."""
    found = [
        row * size + rng.integers(0, size, rng.integers(1, 60))
        for row in range(rows)
        if row not in empty
    ]
    cells = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    return rng.permutation(cells).astype(np.int64)


def _scipy_csr(cells: NDArray[np.int64], rows: int, size: int) -> sparse.csr_matrix:
    row, index = np.divmod(cells, size)
    ones = np.ones(cells.size, dtype=np.float32)
    return sparse.csr_matrix(sparse.coo_matrix((ones, (row, index)), shape=(rows, size)))


def _scipy_wide(
    counts: dict[str, sparse.csr_matrix],
    idf: dict[str, NDArray[np.float32]],
    kernel: NDArray[np.float32],
    bias: NDArray[np.float32],
    spec: WideSpec,
) -> NDArray[np.float32]:
    """The wide part as the SciPy version computed it: sublinear TF-IDF, one L2 norm per role
    and row, concatenated in ``spec.parts`` order, ``@ kernel + bias``, the activation."""
    tfidf = []
    for role in spec.parts:
        matrix = counts[role].astype(np.float64)
        matrix.data = (1.0 + np.log(matrix.data)) * idf[role][matrix.indices]
        norms = np.sqrt(np.maximum(np.asarray(matrix.multiply(matrix).sum(axis=1)), 1e-12))
        tfidf.append(sparse.csr_matrix(matrix.multiply(1.0 / norms)))
    out = np.asarray(sparse.hstack(tfidf).tocsr() @ kernel.astype(np.float64)) + bias
    return (np.maximum(out, 0.0) if spec.activation == "relu" else out).astype(np.float32)


@pytest.mark.parametrize("rows", [0, 1, 10])
def test_csr_counts_equal_scipys(rows: int) -> None:
    rng = np.random.default_rng(rows)
    for size, empty in ((SIZES["words"], EMPTY_ROWS["words"]), (50, set(range(rows)))):
        cells = _cells(rng, rows, size, empty)
        ours, theirs = sparse_counts(cells, rows, size), _scipy_csr(cells, rows, size)
        theirs.sort_indices()
        assert ours.shape == theirs.shape == (rows, size)
        np.testing.assert_array_equal(ours.indptr, theirs.indptr)
        np.testing.assert_array_equal(ours.indices, theirs.indices)
        np.testing.assert_array_equal(ours.data, theirs.data)
        assert ours.data.dtype == np.float32
        np.testing.assert_array_equal(ours.toarray(), theirs.toarray())


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("rows", [1, 10])
def test_the_wide_product_equals_scipys(rows: int, activation: Literal["relu", "linear"]) -> None:
    """Random counts with empty rows (first and last, in one role or both) and a batch of one;
    equal to SciPy's float64 product to float32 rounding."""
    rng = np.random.default_rng(7)
    spec = WideSpec(parts=["words", "chars"], activation=activation)
    idf = {r: rng.uniform(1, 9, n).astype(np.float32) for r, n in SIZES.items()}
    kernel = rng.normal(0, 0.1, (sum(SIZES.values()), 16)).astype(np.float32)
    bias = rng.normal(0, 0.05, 16).astype(np.float32)
    empty = {role: {i for i in rows_ if i < rows - 1} for role, rows_ in EMPTY_ROWS.items()}
    empty["chars"].add(rows - 1)  # the last row: words only (the only row when rows == 1)
    cells = {r: _cells(rng, rows, SIZES[r], empty[r]) for r in spec.parts}
    ours = WideLayer(spec, idf, kernel, bias)(
        {r: sparse_counts(cells[r], rows, SIZES[r]) for r in cells}
    )
    theirs = _scipy_wide(
        {r: _scipy_csr(cells[r], rows, SIZES[r]) for r in cells}, idf, kernel, bias, spec
    )
    assert ours.dtype == np.float32 and ours.shape == (rows, 16)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    if activation == "linear" and rows > 1:
        np.testing.assert_allclose(ours[0], bias, rtol=0, atol=0)  # no n-gram at all: the bias


def test_a_batch_without_any_ngram_gives_the_activated_bias() -> None:
    spec = WideSpec(parts=["words"], activation="relu")
    bias = np.asarray([-1.0, 0.5], dtype=np.float32)
    layer = WideLayer(spec, {"words": np.ones(3, np.float32)}, np.ones((3, 2), np.float32), bias)
    out = layer({"words": sparse_counts(np.zeros(0, dtype=np.int64), 3, 3)})
    np.testing.assert_array_equal(out, [[0.0, 0.5]] * 3)
    assert layer({"words": sparse_counts(np.zeros(0, dtype=np.int64), 0, 3)}).shape == (0, 2)


@pytest.mark.parametrize("mode", ["count", "multi_hot", "tf_idf"])
def test_dense_inputs_are_weighed_as_from_scipys_dense_counts(mode: str) -> None:
    rng = np.random.default_rng(3)
    size = SIZES["words"]
    cells = _cells(rng, 6, size, {2})
    idf = rng.uniform(1, 5, size).astype(np.float32)
    vocab = Vocabulary(
        tokens=[f"t{i}" for i in range(size)],
        mode=mode,
        idf=[float(w) for w in idf] if mode == "tf_idf" else None,
    )
    dense = _scipy_csr(cells, 6, size).toarray()
    want = {"count": dense, "multi_hot": np.minimum(dense, 1.0), "tf_idf": dense * idf}[mode]
    got = _weigh(sparse_counts(cells, 6, size), vocab)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_sparse_counts_hold_no_scipy_type() -> None:
    spec = TextSpec(words=Vocabulary(tokens=["[UNK]", "piscine", "livre"], mode="count"))
    counts = TextVectors(spec)._counts("words", [["piscine", "piscine", "zzz"], []])
    assert isinstance(counts, SparseCounts)
    np.testing.assert_array_equal(counts.toarray(), [[1, 2, 0], [0, 0, 0]])


def test_the_serving_modules_import_neither_scipy_nor_sklearn() -> None:
    """What serving and batch prediction import from core (no module of core imports SciPy,
    tests/unit/core/test_no_tensorflow.py)."""
    code = (
        "import sys\n"
        "import rakuten_core.bundle, rakuten_core.scoring, rakuten_core.text_vectors\n"
        "import rakuten_core.drift, rakuten_core.records\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'sklearn')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
