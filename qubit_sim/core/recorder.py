"""Columnar recording of per-step values, streamed to Parquet in chunks.

Rows are kept in preallocated numpy buffers and flushed every ``chunk_rows`` steps, so a run that
fails half-way still leaves everything simulated up to the last flush (and, after :meth:`close`,
up to the failure) in a valid Parquet file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Recorder"]


class Recorder:
    """Records float columns per step; ``time`` (UTC) and ``t_s`` are added on write.

    Args:
        columns: Column names (units in the names).
        start: Scenario start (UTC).
        step_s: Step [s].
        path: Parquet file to stream to; ``None`` keeps everything in memory only.
        chunk_rows: Rows per flushed chunk.
        keep_in_memory: Also keep all rows for :meth:`frame` (needed for KPIs and plots).
    """

    def __init__(
        self,
        columns: Sequence[str],
        start: datetime,
        step_s: int,
        path: Path | None = None,
        chunk_rows: int = 10_080,
        keep_in_memory: bool = True,
        n_rows_hint: int = 0,
    ) -> None:
        if len(set(columns)) != len(columns):
            dupes = sorted({c for c in columns if list(columns).count(c) > 1})
            raise ValueError(f"duplicate recorder columns: {dupes}")
        self.columns = list(columns)
        self.index = {name: i for i, name in enumerate(self.columns)}
        self.start = start
        self.step_s = step_s
        self.path = path
        self.chunk_rows = chunk_rows
        self._fill = 0
        self._rows_flushed = 0
        self._writer: Any = None
        self._keep = keep_in_memory
        self._kept: list[np.ndarray] = []
        self._all = np.zeros((n_rows_hint, len(self.columns))) if keep_in_memory else None
        self._n_all = 0
        # Kept in memory only, with the length known: rows are written straight into the kept
        # array (no chunk buffer to allocate, no copy per flush) until it is full.
        self._direct = path is None and keep_in_memory and n_rows_hint > 0
        if self._direct:
            assert self._all is not None
            self._buffer = self._all
        else:
            self._buffer = np.zeros((chunk_rows, len(self.columns)))

    @property
    def n_rows(self) -> int:
        return self._rows_flushed + self._fill

    def row(self) -> np.ndarray:
        """The buffer row for the current step; fill it, then call :meth:`commit`."""
        try:
            return self._buffer[self._fill]
        except IndexError:
            # A full kept array goes on in chunks; the chunk buffer is allocated only when a row
            # is asked for, so a run that ends exactly there never pays for zeroing it.
            self._buffer = np.zeros((self.chunk_rows, len(self.columns)))
            return self._buffer[self._fill]

    def commit(self) -> None:
        self._fill += 1
        if self._fill == len(self._buffer):
            self.flush()

    def _times(self, first_row: int, n: int) -> tuple[np.ndarray, Any]:
        import pandas as pd

        t_s = (np.arange(first_row, first_row + n, dtype=np.int64)) * self.step_s
        start = pd.Timestamp(self.start).tz_convert("UTC")
        return t_s, start + pd.to_timedelta(t_s, unit="s")

    def flush(self) -> None:
        if self._direct:
            self._n_all = self._fill
            if self._fill == len(self._buffer):
                # Full: go on in chunks, appending to the kept rows.
                self._direct = False
                self._rows_flushed = self._fill
                self._fill = 0
                self._buffer = self._buffer[:0]
            return
        if self._fill == 0:
            return
        block = self._buffer[: self._fill]
        if self._keep:
            self._keep_block(block)
        if self.path is not None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            t_s, times = self._times(self._rows_flushed, self._fill)
            arrays = [pa.array(times), pa.array(t_s)] + [
                pa.array(block[:, i]) for i in range(block.shape[1])
            ]
            table = pa.Table.from_arrays(arrays, names=["time", "t_s", *self.columns])
            if self._writer is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Dictionary encoding does not pay for measured floats (few repeated values): the
                # writer tries it per column and falls back; without it writing takes half the
                # time and the file is smaller.
                self._writer = pq.ParquetWriter(
                    self.path, table.schema, compression="zstd", use_dictionary=False
                )
            self._writer.write_table(table)
        self._rows_flushed += self._fill
        self._fill = 0

    def _keep_block(self, block: np.ndarray) -> None:
        assert self._all is not None
        needed = self._n_all + len(block)
        if needed > len(self._all):
            grown = np.zeros((max(needed, 2 * len(self._all)), len(self.columns)))
            grown[: self._n_all] = self._all[: self._n_all]
            self._all = grown
        self._all[self._n_all : needed] = block
        self._n_all = needed

    def close(self) -> None:
        """Flush what is buffered and finish the Parquet file (safe to call twice)."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def frame(self) -> pd.DataFrame:
        """Everything recorded so far as a pandas DataFrame (``time``, ``t_s``, columns)."""
        import pandas as pd

        if not self._keep:
            raise RuntimeError("recorder was created with keep_in_memory=False")
        self.flush()
        assert self._all is not None
        data = self._all[: self._n_all]
        t_s, times = self._times(0, self._n_all)
        df = pd.DataFrame(data, columns=self.columns)
        df.insert(0, "t_s", t_s)
        df.insert(0, "time", times)
        return df

    def array(self) -> np.ndarray:
        """All recorded rows as one array (rows x columns)."""
        self.flush()
        assert self._all is not None
        return self._all[: self._n_all]
