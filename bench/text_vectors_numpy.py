"""The wide part in plain NumPy against the SciPy CSR version it replaced, side by side.

``rakuten_core.text_vectors`` kept the n-gram counts in SciPy CSR matrices and computed the wide
Dense layer as ``csr @ kernel``; it now uses its own :class:`SparseCounts`, merges the roles'
entries row by row and, per row, gathers the kernel rows of the n-grams present for one BLAS
matrix-vector product, so that the serving and prediction images need neither SciPy nor
scikit-learn. The SciPy version is copied here (``_scipy_csr``, ``_scipy_wide``) as the
reference peer.

Synthetic batches of 1, 8, 32 and 128 texts, each with ``--min-ids``..``--max-ids`` distinct
n-gram ids (one third words, two thirds characters; counts mostly 1) drawn uniformly from the
vocabularies of ``params.yaml`` (``train.text.word_max_tokens`` + ``char_max_tokens``: 120,000)
into a float32 kernel of ``train.text.wide_units`` columns (256), relu. Two stages are timed,
interleaved (SciPy then NumPy, then the other order, every round) and the median of
``--rounds`` printed: ``counts`` (cells -> CSR container, ``sparse_counts``) and ``wide``
(container -> the Dense layer's output, ``WideLayer.__call__``). With a real bundle
(``--bundle``, default
``models/current``; skipped when it has no ``serving/wide.npz``) ``TextVectors.__call__`` is
also timed end to end on real listings (``../shared/data/rakuten/raw_sample``), its wide layer
swapped for the SciPy peer in the other column; the row names the bundle's kernel shape (a
test-sized bundle is dominated by the Python loops, not the product). Prints a markdown table;
asserts nothing but that both peers give the same numbers.

    uv run --frozen python bench/text_vectors_numpy.py [--rounds 41] [--batches 1,8,32,128]
"""

from __future__ import annotations

import csv
import os
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml
from numpy.typing import NDArray
from scipy import sparse

from rakuten_core.text_spec import TextSpec, WideSpec
from rakuten_core.text_vectors import TextVectors
from rakuten_core.text_wide import SparseCounts, WideLayer, sparse_counts

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "rakuten"
_L2_EPSILON = 1e-12

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


# --- the SciPy version, as rakuten_core.text_vectors had it -------------------------------------


def _scipy_csr(cells: NDArray[np.int64], rows: int, size: int) -> sparse.csr_matrix:
    keys, counts = np.unique(cells, return_counts=True)
    row, index = np.divmod(keys, size)
    indptr = np.searchsorted(row, np.arange(rows + 1))
    return sparse.csr_matrix((counts.astype(np.float32), index, indptr), shape=(rows, size))


def _scipy_wide(layer: WideLayer, counts: Mapping[str, Any]) -> NDArray[np.float32]:
    """``WideLayer.__call__`` as it was, on the layer's own weights (SciPy matrices in)."""
    rows = next(iter(counts.values())).shape[0]
    out = np.zeros((rows, layer.units), dtype=np.float32)
    for role, idf, offset in layer._parts:
        kernel = layer._kernel[offset : offset + idf.size]
        matrix = counts[role]
        weights = (1.0 + np.log(matrix.data, dtype=np.float32)) * idf[matrix.indices]
        row_of = np.repeat(np.arange(rows), np.diff(matrix.indptr))
        norms = np.bincount(row_of, weights=weights * weights, minlength=rows)
        scale = (1.0 / np.sqrt(np.maximum(norms, _L2_EPSILON))).astype(np.float32)
        tfidf = sparse.csr_matrix(
            (weights * scale[row_of], matrix.indices, matrix.indptr), shape=matrix.shape
        )
        out += tfidf @ kernel
    out += layer._bias
    if layer.spec.activation == "relu":
        np.maximum(out, 0.0, out=out)
    return out


class _ScipyWide:
    """Stands in for a ``TextVectors``' wide layer: the same weights through the SciPy path
    (its ``SparseCounts`` made SciPy matrices, as the old ``sparse_counts`` made them)."""

    def __init__(self, layer: WideLayer) -> None:
        self.layer = layer
        self.spec = layer.spec

    def __call__(self, counts: Mapping[str, SparseCounts]) -> NDArray[np.float32]:
        return _scipy_wide(
            self.layer,
            {
                role: sparse.csr_matrix((c.data, c.indices, c.indptr), shape=c.shape)
                for role, c in counts.items()
            },
        )


# --- inputs --------------------------------------------------------------------------------------


def _sizes() -> tuple[int, int, int]:
    text = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["train"]["text"]
    return int(text["word_max_tokens"]), int(text["char_max_tokens"]), int(text["wide_units"])


def _cells(
    rng: np.random.Generator, texts: int, ids: tuple[int, int], sizes: dict[str, int]
) -> dict[str, NDArray[np.int64]]:
    """Per role, ``row * size + id`` for every n-gram occurrence of ``texts`` synthetic texts."""
    found: dict[str, list[NDArray[np.int64]]] = {role: [] for role in sizes}
    for row in range(texts):
        distinct = int(rng.integers(ids[0], ids[1] + 1))
        for role, share in (("words", distinct // 3), ("chars", distinct - distinct // 3)):
            size = sizes[role]
            picked = rng.choice(size, share, replace=False)
            times = rng.geometric(0.6, share)  # most n-grams once, some a few times
            found[role].append(row * size + np.repeat(picked, times))
    return {role: rng.permutation(np.concatenate(parts)) for role, parts in found.items()}


def _layer(rng: np.random.Generator, sizes: dict[str, int], units: int) -> WideLayer:
    spec = WideSpec(parts=["words", "chars"], activation="relu")
    idf = {role: rng.uniform(1, 10, n).astype(np.float32) for role, n in sizes.items()}
    kernel = rng.normal(0, 0.02, (sum(sizes.values()), units)).astype(np.float32)
    return WideLayer(spec, idf, kernel, rng.normal(0, 0.05, units).astype(np.float32))


def _time(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _interleaved(peers: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each peer, alternating which one runs first every round."""
    names = list(peers)
    for name in names:
        peers[name]()  # warm-up: caches, BLAS threads
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            seconds[name].append(_time(peers[name]))
    return {name: statistics.median(s) for name, s in seconds.items()}


def _row(batch: str, detail: str, stage: str, times: dict[str, float]) -> str:
    old, new = times["scipy"] * 1e6, times["numpy"] * 1e6
    return f"| {batch} | {detail} | {stage} | {old:,.0f} | {new:,.0f} | {new / old:.2f} |"


def _listings(count: int) -> list[str]:
    from rakuten_core.text import product_text  # noqa: PLC0415

    path = SHARED / "raw_sample" / "X_test_update.csv"
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1 : count + 1]
    return [product_text(r[1], r[2]) for r in rows]


def _end_to_end(bundle: Path, batches: list[int], rounds: int) -> list[str]:
    serving = bundle / "serving"
    if not (serving / "wide.npz").is_file() or not (SHARED / "raw_sample").is_dir():
        typer.echo(f"(no end-to-end timing: no {serving / 'wide.npz'} or no real listings)")
        return []
    spec = TextSpec.model_validate_json((serving / "text.json").read_text(encoding="utf-8"))
    assert spec.wide is not None
    layer = WideLayer.load(serving / "wide.npz", spec.wide)
    new = TextVectors(spec, layer)
    old = TextVectors(spec, layer)
    old.wide = _ScipyWide(layer)  # type: ignore[assignment]
    texts = _listings(max(batches))
    rows, units = layer._kernel.shape
    detail = f"real listings, kernel {rows:,} x {units}"
    lines = []
    for batch in batches:
        chunk = texts[:batch]
        got, want = new(chunk)["wide_features"], old(chunk)["wide_features"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        peers = {"scipy": lambda c=chunk: old(c), "numpy": lambda c=chunk: new(c)}
        lines.append(
            _row(str(batch), detail, "TextVectors end to end", _interleaved(peers, rounds))
        )
    return lines


@app.command()
def main(
    rounds: Annotated[int, typer.Option(min=1, help="Timed calls per peer (median).")] = 41,
    batches: Annotated[str, typer.Option(help="Batch sizes, comma-separated.")] = "1,8,32,128",
    min_ids: Annotated[int, typer.Option(min=3, help="Fewest distinct n-grams a text.")] = 300,
    max_ids: Annotated[int, typer.Option(min=3, help="Most distinct n-grams a text.")] = 800,
    bundle: Annotated[Path, typer.Option(help="A bundle for the end-to-end timing.")] = ROOT
    / "models"
    / "current",
    seed: int = 0,
) -> None:
    """Time SciPy's CSR and the NumPy wide part on the same inputs; print a markdown table."""
    rng = np.random.default_rng(seed)
    words, chars, units = _sizes()
    sizes = {"words": words, "chars": chars}
    layer = _layer(rng, sizes, units)
    sizes_list = [int(b) for b in batches.split(",")]
    typer.echo(
        f"kernel ({words:,} + {chars:,}) x {units} float32, {min_ids}-{max_ids} distinct n-grams "
        f"a text, median of {rounds} interleaved rounds, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    lines = []
    for batch in sizes_list:
        cells = _cells(rng, batch, (min_ids, max_ids), sizes)
        nnz = sum(np.unique(c).size for c in cells.values())
        ours = {role: sparse_counts(c, batch, sizes[role]) for role, c in cells.items()}
        theirs = {role: _scipy_csr(c, batch, sizes[role]) for role, c in cells.items()}
        np.testing.assert_allclose(layer(ours), _scipy_wide(layer, theirs), rtol=1e-5, atol=1e-6)
        detail = f"{nnz:,} n-grams"
        counts = _interleaved(
            {
                "scipy": lambda c=cells, b=batch: [_scipy_csr(c[r], b, sizes[r]) for r in c],
                "numpy": lambda c=cells, b=batch: [sparse_counts(c[r], b, sizes[r]) for r in c],
            },
            rounds,
        )
        wide = _interleaved(
            {"scipy": lambda t=theirs: _scipy_wide(layer, t), "numpy": lambda o=ours: layer(o)},
            rounds,
        )
        lines.append(_row(str(batch), detail, "counts (`sparse_counts`)", counts))
        lines.append(_row(str(batch), detail, "wide (`WideLayer`)", wide))
        both = {name: counts[name] + wide[name] for name in counts}
        lines.append(_row(str(batch), detail, "**counts + wide**", both))
    lines += _end_to_end(bundle, sizes_list, rounds)
    typer.echo("| batch | input | stage | SciPy µs | NumPy µs | NumPy / SciPy |")
    typer.echo("|---:|---|---|---:|---:|---:|")
    for line in lines:
        typer.echo(line)


if __name__ == "__main__":
    app()
