"""Streaming embedding output to .npy, .npz or Parquet, written atomically (nothing appears until it is complete)."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from hyenadna.utils.io import atomic_path, atomic_write_text

OUTPUT_SUFFIXES = (".npy", ".npz", ".parquet")


def _member(zf: zipfile.ZipFile, name: str):
    """A new .npz member with a fixed timestamp, so the same embeddings always make the same bytes."""
    return zf.open(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True)


# Writing per-token rows to Parquet holds about this many more copies of them while pyarrow encodes the column (its
# levels and pages): a 1 Mb record's 1.0 GB of rows peaked at 5.7 GB written uncompressed, 6.6 GB with snappy (a 2 Mb
# one's 2.0 GB: 13.4 GB with snappy, 2.4 GB to .npz) (benchmarks/embed_memory.py --pooling none)
PARQUET_PER_TOKEN_COPIES = 5


class EmbeddingWriter:
    """Add chunks of (ids, lengths, embeddings); pooled (n, D) or per-token (n, L, D) zero-padded arrays.

    - ``.npy``: pooled only; ids go to ``<output>.ids.txt`` beside it (per token, ``hyenadna embed`` fills one
      ``(N, L_max, D)`` .npy on disk instead: ``HyenaDNA.get_embeddings(allocate=...)``).
    - ``.npz``: ``ids``, ``lengths`` and ``embeddings`` (pooled), or ``emb_<i>`` arrays of shape (length_i, D).
    - ``.parquet``: columns ``id``, ``length``, ``embedding`` (a list of D floats, or a list of lists per token).
    Per-token arrays are written as they come, so memory stays flat whatever the number of sequences.
    """

    def __init__(self, path: str | Path, per_token: bool):
        self.path = Path(path)
        if self.path.suffix not in OUTPUT_SUFFIXES:
            raise ValueError(f"{path}: output must end in one of {OUTPUT_SUFFIXES}")
        if per_token and self.path.suffix == ".npy":
            raise ValueError(
                f"{path}: this writer takes per-token embeddings as .npz or .parquet; a per-token .npy is filled on "
                "disk by get_embeddings(allocate=...), as `hyenadna embed --pooling none -o X.npy` does"
            )
        self.per_token = per_token
        self.ids: list[str] = []
        self.lengths: list[int] = []
        self.dim: int | None = None

    def __enter__(self) -> EmbeddingWriter:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._raw = tempfile.TemporaryFile(dir=self.path.parent)  # pooled rows, appended as they come
        self._zip = zipfile.ZipFile(self._tmp, "w", allowZip64=True) if self.path.suffix == ".npz" else None
        self._parquet = None
        return self

    def add(self, ids: list[str], lengths: np.ndarray, embeddings: np.ndarray | list[np.ndarray]) -> None:
        """Pooled (n, D) rows, or per-token (n, L, D) zero-padded or a list of n (length_i, D) arrays."""
        self.dim = (embeddings[0] if isinstance(embeddings, list) else embeddings).shape[-1]
        if self.path.suffix == ".parquet":
            self._add_parquet(ids, lengths, embeddings)
        elif self.per_token:
            for k, (n, emb) in enumerate(zip(lengths, embeddings, strict=True)):
                with _member(self._zip, f"emb_{len(self.ids) + k}.npy") as f:
                    np.lib.format.write_array(f, np.ascontiguousarray(emb[:n], dtype=np.float32))
        else:
            self._raw.write(np.ascontiguousarray(embeddings, dtype=np.float32).tobytes())
        self.ids.extend(ids)
        self.lengths.extend(int(x) for x in lengths)

    def _add_parquet(self, ids, lengths, embeddings) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.per_token:
            # from the arrays' memory, not from Python lists (a float object a value): with those and the
            # floats dictionary-encoded, a 2 Mb record's 2.0 GB of rows was OOM-killed at 24 GB
            rows = [
                np.asarray(emb[:n], dtype=np.float32).reshape(-1) for n, emb in zip(lengths, embeddings, strict=True)
            ]
            offsets = np.concatenate([[0], np.cumsum([int(n) for n in lengths])]).astype(np.int32)
            values = rows[0] if len(rows) == 1 else np.concatenate(rows)  # pa.array reads numpy memory in place
            tokens = pa.FixedSizeListArray.from_arrays(pa.array(values), self.dim)
            col = pa.ListArray.from_arrays(pa.array(offsets), tokens)
        else:
            col = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.astype(np.float32).ravel()), self.dim)
        table = pa.table({"id": pa.array(ids, pa.string()), "length": pa.array(lengths, pa.int64()), "embedding": col})
        if self._parquet is None:
            # no dictionary for the embeddings: floats seldom repeat, and it held about 30x the column's size; nor
            # compression: snappy made them no smaller and held one more copy of the rows while it ran
            compression = {"id": "snappy", "length": "snappy", "embedding": "none"}
            self._parquet = pq.ParquetWriter(self._tmp, table.schema, use_dictionary=["id"], compression=compression)
        self._parquet.write_table(table)

    def _finish(self) -> None:
        n = len(self.ids)
        if self.path.suffix == ".parquet":
            if self._parquet is None:
                raise ValueError("no sequences to write")
            self._parquet.close()
            return
        ids, lengths = np.array(self.ids, dtype=str), np.array(self.lengths, dtype=np.int64)
        if self.per_token:
            for name, arr in (("ids", ids), ("lengths", lengths)):
                with _member(self._zip, f"{name}.npy") as f:
                    np.lib.format.write_array(f, arr)
            self._zip.close()
            return
        self._raw.flush()
        shape = (n, self.dim or 0)
        if self.path.suffix == ".npy":
            with open(self._tmp, "wb") as f:
                self._copy_pooled(f, shape)
            atomic_write_text(str(self.path) + ".ids.txt", "".join(f"{i}\n" for i in self.ids))
        else:
            for name, arr in (("ids", ids), ("lengths", lengths)):
                with _member(self._zip, f"{name}.npy") as f:
                    np.lib.format.write_array(f, arr)
            with _member(self._zip, "embeddings.npy") as f:
                self._copy_pooled(f, shape)
            self._zip.close()

    def _copy_pooled(self, f, shape: tuple[int, int]) -> None:
        """An .npy header, then the pooled rows streamed from the temporary file: memory stays flat."""
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_2_0(f, header)
        self._raw.seek(0)
        shutil.copyfileobj(self._raw, f, 16 * 2**20)

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._finish()
            else:
                if self._zip is not None:
                    self._zip.close()
                if self._parquet is not None:
                    self._parquet.close()
        finally:
            self._raw.close()
            self._atomic.__exit__(exc_type, exc, tb)
        return False
