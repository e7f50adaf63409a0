"""Reading the CSV files a scenario names: one dialect rule, one time rule, errors with lines.

Every data file of a scenario (building load, weather, carbon intensity, EV sessions) is read
through :func:`read_csv_table`:

* **Times** are ISO 8601. A time written with an offset (``2025-03-30T01:30:00Z``,
  ``2025-03-30T03:30:00+02:00``) is the instant it names. A time written without one is wall-clock
  time of the zone ``tz`` (a scenario passes its ``site.location.tz``). A naive wall-clock time
  that zone skips (clocks go forward) or passes twice (clocks go back) is an error naming the
  line: only an offset can say which instant was meant.
* **Dialect**: fields are separated by ``,``. A file whose header line has ``;`` and no ``,`` is
  separated by ``;`` and its numbers may have decimal commas (``21,5``), as spreadsheets write
  them in many locales; a tab-separated header likewise. A UTF-8 byte-order mark is ignored;
  column names are matched ignoring case and surrounding spaces.

Line numbers in errors are those of the file (the header is line 1).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

import numpy as np
import pandas as pd

from qubit_sim.errors import QubitSimError

__all__ = [
    "CsvTable",
    "TimeColumn",
    "format_utc",
    "gap_needed",
    "line_list",
    "parse_times",
    "read_csv_table",
]

_SHOWN = 5
# An offset counts only after a time of day, so the "-28" of "2025-03-28" is not one.
_OFFSET = re.compile(r"\d:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+\s*$")
_DAY_FIRST = re.compile(r"^\s*\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")


def format_utc(stamp: pd.Timestamp) -> str:
    """``2025-03-28T00:00:00Z`` for an instant (tz-aware, or naive meaning UTC)."""
    stamp = pd.Timestamp(stamp)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def line_list(mask: np.ndarray, lines: np.ndarray) -> str:
    """``"lines 2, 3, 4 ..."`` for the rows selected by ``mask``."""
    chosen = lines[np.asarray(mask, dtype=bool)].tolist()
    shown = ", ".join(str(n) for n in chosen[:_SHOWN])
    more = " ..." if len(chosen) > _SHOWN else ""
    return f"line{'s' if len(chosen) > 1 else ''} {shown}{more}"


@dataclass(frozen=True)
class TimeColumn:
    """A column of times read by the rule of this module.

    Attributes:
        utc: The instants (UTC); ``NaT`` where the row is bad.
        texts: The times as written.
        lines: File line of each row.
        tz: Zone of naive times (``None``: naive times are refused).
        unparsable, no_zone, nonexistent, ambiguous: Per-row masks of what is wrong.
    """

    utc: pd.DatetimeIndex
    texts: np.ndarray
    lines: np.ndarray
    tz: str | None
    unparsable: np.ndarray
    no_zone: np.ndarray
    nonexistent: np.ndarray
    ambiguous: np.ndarray

    @property
    def bad(self) -> np.ndarray:
        """Rows whose time is not usable."""
        return self.unparsable | self.no_zone | self.nonexistent | self.ambiguous

    def row_problem(self, row: int) -> str | None:
        """What is wrong with the time of data row ``row`` (0-based), or ``None``."""
        text = str(self.texts[row]).strip()
        if self.unparsable[row]:
            return f"unparsable time {text!r}; write ISO 8601, e.g. 2024-06-01T12:00:00Z"
        if self.no_zone[row]:
            return f"time {text!r} has no UTC offset; add one (e.g. Z) or pass tz="
        if self.nonexistent[row]:
            return self._gap_message(row)
        if self.ambiguous[row]:
            return self._overlap_message(row)
        return None

    def problem(self) -> str | None:
        """One message for the first kind of bad time in the column, listing its lines."""
        if self.unparsable.any():
            bad = self.texts[self.unparsable]
            return (
                f"unparsable time at {line_list(self.unparsable, self.lines)}; write ISO 8601, "
                f"e.g. 2024-06-01T12:00:00Z{_time_hint(bad)}"
            )
        for mask in (self.no_zone, self.nonexistent, self.ambiguous):
            if mask.any():
                first = int(np.flatnonzero(mask)[0])
                also = int(mask.sum()) - 1
                more = f" (and {also} more: {line_list(mask, self.lines)})" if also else ""
                return f"line {self.lines[first]}{more}: {self.row_problem(first)}"
        return None

    def _wall(self, row: int) -> pd.Timestamp:
        return pd.Timestamp(str(self.texts[row]).strip())

    def _gap_message(self, row: int) -> str:
        wall = self._wall(row)
        # Read on the offset in force just before the jump, as a clock not yet moved would.
        offset = (wall - pd.Timedelta(hours=3)).tz_localize(self.tz).utcoffset()
        instant = (wall - offset).tz_localize("UTC")
        written = instant.tz_convert(timezone(offset)).isoformat()
        return (
            f"local time {wall:%Y-%m-%d %H:%M:%S} does not exist in {self.tz}: the clocks skip it "
            "when daylight saving time starts. Write the times with their UTC offset (on the "
            f"offset before the change: {written}) or in UTC with Z ({format_utc(instant)})"
        )

    def _overlap_message(self, row: int) -> str:
        wall = self._wall(row)
        first = wall.tz_localize(self.tz, ambiguous=True)
        second = wall.tz_localize(self.tz, ambiguous=False)
        return (
            f"local time {wall:%Y-%m-%d %H:%M:%S} occurs twice in {self.tz}: the clocks pass it "
            f"again when daylight saving time ends. Write the times with their UTC offset "
            f"({first.isoformat()} or {second.isoformat()}) or in UTC with Z "
            f"({format_utc(first)} or {format_utc(second)})"
        )


def _time_hint(bad: np.ndarray) -> str:
    texts = [str(text).strip() for text in bad]
    if texts and all(text.lstrip("-").isdigit() for text in texts):
        return f" (values like {texts[0]!r} look like Unix epoch seconds)"
    if texts and all(_DAY_FIRST.match(text) for text in texts):
        return f" (values like {texts[0]!r} put the day or month first; write the year first)"
    if texts and all(text == "" for text in texts):
        return " (the time is empty)"
    return ""


def parse_times(
    texts: pd.Series, lines: np.ndarray, tz: str | None, in_order: bool = False
) -> TimeColumn:
    """Read a column of ISO 8601 times by the module's rule (see the module docstring).

    With ``in_order`` (a time series written in time order, as a meter exports it), the local
    times the autumn change repeats are told apart by their order when every time is written
    without an offset: the first pass through the repeated hour is summer time, the second
    winter time. Without it, or when the order does not say, they are ambiguous.
    """
    strings = texts.fillna("").astype(str).str.strip()
    n = len(strings)
    aware = strings.str.contains(_OFFSET, regex=True).to_numpy(dtype=bool)
    utc = pd.Series(pd.NaT, index=strings.index, dtype="datetime64[ns, UTC]")
    if aware.any():
        utc[aware] = pd.to_datetime(
            strings[aware], utc=True, errors="coerce", format="ISO8601"
        ).dt.as_unit("ns")
    unparsable = aware & utc.isna().to_numpy()
    no_zone = np.zeros(n, dtype=bool)
    nonexistent = np.zeros(n, dtype=bool)
    ambiguous = np.zeros(n, dtype=bool)
    naive = ~aware
    if naive.any():
        wall = pd.DatetimeIndex(
            pd.to_datetime(strings[naive], errors="coerce", format="ISO8601")
        ).as_unit("ns")
        parsed = ~np.asarray(wall.isna())
        unparsable[naive] = ~parsed
        if tz is None:
            no_zone[np.flatnonzero(naive)[parsed]] = True
        else:
            m = len(wall)
            early = wall.tz_localize(tz, ambiguous=np.ones(m, bool), nonexistent="NaT")
            late = wall.tz_localize(tz, ambiguous=np.zeros(m, bool), nonexistent="NaT")
            gap = parsed & np.asarray(early.isna())
            twice = parsed & ~gap & np.asarray(early != late)
            rows = np.flatnonzero(naive)
            nonexistent[rows[gap]] = True
            ambiguous[rows[twice]] = True
            if in_order and twice.any() and naive.all() and parsed.all():
                try:
                    ordered = wall.tz_localize(tz, ambiguous="infer", nonexistent="NaT")
                except Exception:  # noqa: BLE001 - pandas raises pytz's AmbiguousTimeError
                    pass  # the repeats are not in an order that says which is which
                else:
                    early = ordered
                    twice = np.zeros(m, dtype=bool)
                    ambiguous[:] = False
            good = parsed & ~gap & ~twice
            utc.iloc[rows[good]] = early[good].tz_convert("UTC")
    return TimeColumn(
        utc=pd.DatetimeIndex(utc),
        texts=strings.to_numpy(dtype=object),
        lines=lines,
        tz=tz,
        unparsable=unparsable,
        no_zone=no_zone,
        nonexistent=nonexistent,
        ambiguous=ambiguous,
    )


@dataclass(frozen=True)
class CsvTable:
    """A CSV file read as text, with its dialect; cells are parsed on demand.

    Attributes:
        path: The file.
        kind: What it is, for messages (``"load CSV"``).
        frame: Cells as stripped strings; columns named in lower case.
        separator: ``","``, ``";"`` or a tab; with ``;`` or a tab numbers may have decimal commas.
    """

    path: Path
    kind: str
    frame: pd.DataFrame
    separator: str

    @property
    def lines(self) -> np.ndarray:
        """File line of each data row."""
        return self.frame.index.to_numpy(dtype=np.int64) + 2

    def error(self, message: str) -> QubitSimError:
        """An error about this file: ``"<kind> <path>: <message>"``."""
        return QubitSimError(f"{self.kind} {self.path}: {message}")

    def has(self, column: str) -> bool:
        return column in self.frame.columns

    def require(
        self, required: Mapping[str, str], optional: Mapping[str, str] | None = None
    ) -> None:
        """Raise unless every ``required`` column is there.

        ``required`` and ``optional`` map column names to their unit (``"kW"``; ``""`` for none);
        a column of the file that resembles a missing one is named with the unit it needs.
        """
        missing = [name for name in required if name not in self.frame.columns]
        if missing:
            raise QubitSimError(
                f"{self.kind} {self.path} lacks column(s) {', '.join(missing)}; it has "
                f"{', '.join(self.frame.columns)}. Required: {', '.join(required)}"
                + (f"; optional: {', '.join(optional)}" if optional else "")
                + self._column_hints(missing, required)
            )
        if self.frame.empty:
            raise QubitSimError(f"{self.kind} {self.path} has no data rows")

    def _column_hints(self, missing: list[str], units: Mapping[str, str]) -> str:
        columns = list(self.frame.columns)
        hints = []
        for name in missing:
            similar = [c for c in columns if c.startswith(f"{name}_")]
            similar += difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
            if not similar:
                continue
            found = similar[0]
            unit = units.get(name, "")
            if unit:
                hints.append(
                    f"if {found!r} is {name} in another unit, convert it to {unit} and name the "
                    f"column {name}"
                )
            else:
                hints.append(f"rename {found!r} to {name!r}")
        return f" ({'; '.join(hints)})" if hints else ""

    def texts(self, column: str) -> pd.Series:
        return self.frame[column]

    def numbers(self, column: str) -> np.ndarray:
        """The column as floats; ``NaN`` where a cell is empty or not a number."""
        texts = self.frame[column]
        if self.separator != ",":
            texts = texts.str.replace(",", ".", regex=False)
        return pd.to_numeric(texts, errors="coerce").to_numpy(dtype=np.float64)

    def number_problem(self, column: str, bad: np.ndarray) -> str:
        """``"p_kw is not a number at lines ..."`` with a hint for decimal commas."""
        written = [str(text) for text in self.frame[column].to_numpy()[bad]]
        hint = ""
        if self.separator == "," and any(_DECIMAL_COMMA.match(text) for text in written):
            example = next(text for text in written if _DECIMAL_COMMA.match(text))
            hint = (
                f"; values like {example!r} have a decimal comma: write a decimal point "
                f"({example.strip().replace(',', '.')}), or separate the fields with ';'"
            )
        elif all(text.strip() == "" for text in written):
            hint = " (the cell is empty)"
        return f"{column} is not a number at {line_list(bad, self.lines)}{hint}"

    def time_column(self, column: str, tz: str | None) -> TimeColumn:
        """The column's times by the rule of this module, bad rows marked."""
        return parse_times(self.frame[column], self.lines, tz)

    def times(self, column: str, tz: str | None) -> pd.DatetimeIndex:
        """The column's instants (UTC) of a time series; raises naming the lines of the first
        kind of bad time. Repeated autumn hours written in order are told apart by it."""
        parsed = parse_times(self.frame[column], self.lines, tz, in_order=True)
        problem = parsed.problem()
        if problem is not None:
            raise self.error(problem)
        return parsed.utc


def _separator(path: Path) -> str:
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        header = handle.readline()
    if "," in header:
        return ","
    if ";" in header:
        return ";"
    if "\t" in header:
        return "\t"
    return ","


def read_csv_table(path: str | Path, kind: str) -> CsvTable:
    """Read a scenario data file as text (dialect by the module's rule).

    Raises:
        QubitSimError: the file cannot be read or parsed as CSV, or two columns share a name.
    """
    source = Path(path)
    try:
        separator = _separator(source)
        frame = pd.read_csv(
            source,
            sep=separator,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            encoding="utf-8-sig",
        )
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise QubitSimError(f"cannot read {kind} {source}: {exc}") from exc
    names = [str(column).strip().lower() for column in frame.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise QubitSimError(
            f"{kind} {source} has column(s) {', '.join(repeated)} more than once (names are "
            "compared ignoring case)"
        )
    frame.columns = names
    frame = frame.apply(lambda column: column.str.strip())
    return CsvTable(path=source, kind=kind, frame=frame, separator=separator)


def gap_needed(sample: np.ndarray, wanted: np.ndarray) -> tuple[int, int] | None:
    """The first pair of neighbouring ``sample`` times more than twice their median spacing apart
    with a ``wanted`` time strictly between them, or None: a gap in a file that interpolates
    between rows, which the run would pass through."""
    steps = np.diff(sample)
    if not len(steps):
        return None
    wide = np.flatnonzero(steps > 2 * np.median(steps))
    for i in wide:
        if ((wanted > sample[i]) & (wanted < sample[i + 1])).any():
            return int(sample[i]), int(sample[i + 1])
    return None
