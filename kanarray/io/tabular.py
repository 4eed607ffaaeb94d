"""Reading a user's data file into named float64 columns, for the command line.

    names, table = read_table("data.csv")             # (list of n_cols names, (N, n_cols))
    X, y, inputs, targets = split_columns(names, table, "y")
    dataset = train_test_split(X, y, test_frac=0.2, seed=0)   # the dict KAN.fit takes

Formats, chosen by the file's extension:
    .npy              one 2-D array; columns named c0, c1, ... or by `columns`
    .npz              one 2-D array (named like .npy), or several 1-D arrays of one length
                      (each a column, named by its key, in archive order)
    .parquet, .pq     numeric columns; needs pyarrow (not a dependency of kanarray)
    anything else     CSV: a header line of column names, then one row of numbers per line;
                      blank lines are skipped

Every problem a user can fix is one ValueError (FileNotFoundError for a missing file) that names
the file and what to do. Rows are numbered as a spreadsheet shows them: in a CSV the header is
row 1 and the first data row is row 2; in an array the first row is row 1.

Data-parallel training (MPI): each rank reads only its own block of rows,

    n = count_rows(path)
    lo, hi = n * rank // size, n * (rank + 1) // size
    names, block = read_rows(path, lo, hi)
    is_test = held_out_mask(n, test_frac, seed)[lo:hi]    # the same split as train_test_split

A .npy file is memory-mapped, so a rank touches only its rows; a CSV is scanned line by line up to
row hi but only rows [lo, hi) are parsed; .npz and Parquet files are read whole and sliced.
"""
import contextlib
import csv
import io
import os

import numpy as np

from .data import held_out_mask

PARQUET_EXTENSIONS = (".parquet", ".pq")
SHOWN_ROWS = 5  # row numbers listed in an error message before "..."


def _rows_text(row_numbers):
    shown = ", ".join(str(r) for r in row_numbers[:SHOWN_ROWS])
    more = len(row_numbers) - SHOWN_ROWS
    return ("row " if len(row_numbers) == 1 else "rows ") + shown + (
        f" and {more} more" if more > 0 else "")


def _check_path(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, expected a data file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty")
    return path


def _kind(path):
    lower = path.lower()
    if lower.endswith(".npy"):
        return "npy"
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith(PARQUET_EXTENSIONS):
        return "parquet"
    return "csv"


def _check_block(lo, hi):
    if isinstance(lo, bool) or not isinstance(lo, (int, np.integer)) or lo < 0:
        raise ValueError(f"lo must be an integer >= 0, got {lo!r}")
    if hi is not None and (isinstance(hi, bool) or not isinstance(hi, (int, np.integer))
                           or hi < lo):
        raise ValueError(f"hi must be None or an integer >= lo={lo}, got {hi!r}")
    return int(lo), None if hi is None else int(hi)


# ---------------------------------------------------------------------------- CSV
def _csv_header(path, line):
    names = [name.strip() for name in next(csv.reader([line]))]
    if not any(names):
        raise ValueError(f"{path}: the first line is blank; expected a header naming the columns")
    try:
        [float(name) for name in names]
    except ValueError:
        pass
    else:
        raise ValueError(f"{path}: the first line holds numbers, not column names; add a header "
                         "line such as x1,x2,y")
    empty = [i + 1 for i, name in enumerate(names) if not name]
    if empty:
        raise ValueError(f"{path}: the header has no name for column(s) "
                         f"{', '.join(map(str, empty))}")
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{path}: the header names column {name!r} twice")
        seen.add(name)
    return names


def _csv_lines(path, lo, hi):
    """Header names and data rows [lo, hi) as [(spreadsheet row number, line)]: lines are
    scanned up to row hi but not parsed; blank lines are skipped."""
    rows, count = [], 0
    with _utf8(path) as f:
        names = _csv_header(path, f.readline())
        for number, line in enumerate(f, start=2):
            if not line.strip():
                continue
            if hi is not None and count >= hi:
                break
            if count >= lo:
                rows.append((number, line))
            count += 1
    return names, rows


@contextlib.contextmanager
def _utf8(path):
    """open(path) for reading UTF-8 text (a byte-order mark skipped); a file that is not UTF-8
    raises a ValueError that names it."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        try:
            yield f
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a UTF-8 text file (it holds the byte "
                             f"{exc.object[exc.start:exc.start + 1]!r}); save it as a UTF-8 CSV") from None


def _csv_problem(path, names, rows):
    """The error for data rows loadtxt could not read: ragged rows first, then non-numeric
    cells (by column), then rows with empty, NaN or infinite cells."""
    ragged, bad, missing = [], {}, []
    for (number, _), fields in zip(rows, csv.reader(text for _, text in rows)):
        if len(fields) != len(names):
            ragged.append((number, len(fields)))
            continue
        row_missing = False
        for column, cell in zip(names, fields):
            cell = cell.strip()
            try:
                value = float(cell)
            except ValueError:
                if cell:
                    bad.setdefault(column, []).append((number, cell))
                else:
                    row_missing = True
                continue
            row_missing |= not np.isfinite(value)
        if row_missing:
            missing.append(number)
    if ragged:
        number, n_fields = ragged[0]
        also = (f" (wrong column count in {_rows_text([r for r, _ in ragged])})"
                if len(ragged) > 1 else "")
        return ValueError(f"{path}: the header has {len(names)} columns but row {number} has "
                          f"{n_fields}{also}")
    if bad:
        column, cells = next(iter(bad.items()))
        return ValueError(f"{path}: column {column!r} has non-numeric values in "
                          f"{_rows_text([r for r, _ in cells])} (first: {cells[0][1]!r})")
    if missing:
        return ValueError(f"{path}: empty, NaN or infinite cells in {_rows_text(missing)}; "
                          "remove or fill these rows")
    return ValueError(f"{path}: could not read the rows as comma-separated numbers")


def _parse_csv(path, names, rows):
    if not rows:
        return np.empty((0, len(names)))
    try:
        table = np.loadtxt(io.StringIO("".join(text for _, text in rows)), delimiter=",",
                           ndmin=2, dtype=np.float64, comments=None, quotechar='"')
    except ValueError:
        table = None
    if table is None or table.shape != (len(rows), len(names)) or not np.isfinite(table).all():
        raise _csv_problem(path, names, rows)
    return table


# ---------------------------------------------------------------------------- arrays
def _array_names(path, n_cols, columns):
    if columns is None:
        return [f"c{i}" for i in range(n_cols)]
    columns = [str(c) for c in columns]
    if len(columns) != n_cols:
        raise ValueError(f"{path}: columns names {len(columns)} column(s) but the array has "
                         f"{n_cols}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns must be distinct names, got {columns}")
    return columns


def _check_numeric(path, table, what):
    if table.dtype.kind not in "iuf":
        raise ValueError(f"{path}: {what} holds {table.dtype} values, expected numbers")
    return table


def _npz_columns(path, columns):
    """Names and the arrays (full length) of an .npz file."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({exc})") from None
    with archive:
        keys = list(archive.files)
        if not keys:
            raise ValueError(f"{path}: the archive holds no arrays")
        if len(keys) == 1 and archive[keys[0]].ndim == 2:
            table = _check_numeric(path, archive[keys[0]], f"array {keys[0]!r}")
            return _array_names(path, table.shape[1], columns), table
        if columns is not None:
            raise ValueError(f"{path}: the archive names its columns; columns must be None")
        arrays = [archive[key] for key in keys]
    shapes = {key: a.shape for key, a in zip(keys, arrays)}
    if any(a.ndim != 1 for a in arrays) or len({a.shape for a in arrays}) != 1:
        raise ValueError(f"{path}: expected one 2-D array or 1-D columns of one length, got "
                         f"shapes {shapes}")
    for key, a in zip(keys, arrays):
        _check_numeric(path, a, f"column {key!r}")
    return keys, np.stack(arrays, axis=1)


def _parquet_columns(path, columns):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or save "
                          "the data as CSV or .npy") from None
    if columns is not None:
        raise ValueError(f"{path}: a Parquet file names its columns; columns must be None")
    try:
        frame = pq.read_table(path)
    except Exception as exc:  # pyarrow's errors for unreadable files have several classes
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
    names, arrays = [], []
    for name, column in zip(frame.column_names, frame.columns):
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype.kind not in "iufb":
            raise ValueError(f"{path}: column {name!r} holds {column.type} values, expected "
                             "numbers")
        names.append(str(name))
        arrays.append(values.astype(np.float64))  # nulls arrive as NaN
    if not names:
        raise ValueError(f"{path}: the file has no columns")
    return names, np.stack(arrays, axis=1)


def _open_npy(path, columns):
    """Names and the memory-mapped 2-D array of a .npy file (nothing read but its header)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npy file ({exc})") from None
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array (rows, columns), got shape {array.shape}")
    _check_numeric(path, array, "the array")
    return _array_names(path, array.shape[1], columns), array


def _finite_rows(path, table, lo):
    bad = np.nonzero(~np.isfinite(table).all(axis=1))[0]
    if bad.size:
        raise ValueError(f"{path}: NaN or infinite values in {_rows_text(list(bad + lo + 1))} "
                         "(first row = 1); remove or fill these rows")
    return table


# ---------------------------------------------------------------------------- public
def read_rows(path, lo=0, hi=None, columns=None):
    """Column names and the data rows [lo, hi) of a file as a float64 (hi - lo, n_cols) array.

    hi=None reads to the end; a block past the end comes back short (or empty). columns: names
    for the columns of a .npy or a single-array .npz (default c0, c1, ...); files that name their
    columns (CSV, named .npz, Parquet) take None. Errors name the file and the rows at fault,
    numbered in the whole file (see the module doc). A .npy is memory-mapped, so only the block
    is read.
    """
    path = _check_path(path)
    lo, hi = _check_block(lo, hi)
    kind = _kind(path)
    if kind == "csv":
        if columns is not None:
            raise ValueError(f"{path}: a CSV names its columns in its header; columns must be None")
        names, rows = _csv_lines(path, lo, hi)
        return names, _parse_csv(path, names, rows)
    if kind == "npy":
        names, array = _open_npy(path, columns)
    elif kind == "npz":
        names, array = _npz_columns(path, columns)
    else:
        names, array = _parquet_columns(path, columns)
    block = np.array(array[lo:hi], dtype=np.float64)
    return names, _finite_rows(path, block, lo)


def read_table(path, columns=None):
    """Column names and every data row of a file: (names, float64 (N, n_cols)); N >= 1.

    See read_rows for columns and the module doc for the formats.
    """
    names, table = read_rows(path, 0, None, columns)
    if table.shape[0] == 0:
        raise ValueError(f"{os.fspath(path)}: no data rows" + (
            " after the header" if _kind(os.fspath(path)) == "csv" else ""))
    return names, table


def count_rows(path):
    """Number of data rows in a file, for splitting it into per-rank blocks: a CSV's non-blank
    lines after its header (nothing parsed), a .npy's first dimension (its header only); .npz
    and Parquet files are read."""
    path = _check_path(path)
    kind = _kind(path)
    if kind == "csv":
        with _utf8(path) as f:
            _csv_header(path, f.readline())
            return sum(1 for line in f if line.strip())
    if kind == "npy":
        return _open_npy(path, None)[1].shape[0]
    return read_rows(path)[1].shape[0]


def split_columns(names, table, target):
    """Inputs and targets of a table by column name.

    target: "COL" or "COL1,COL2" (or a list of names). -> (X (N, n_in), y (N, n_targets),
    input_names, target_names): the inputs are every other column, in file order.
    """
    names = [str(n) for n in names]
    table = np.asarray(table)
    if table.ndim != 2 or table.shape[1] != len(names):
        raise ValueError(f"table must be 2-D with one column per name ({len(names)}), got shape "
                         f"{table.shape}")
    if isinstance(target, str):
        targets = [t.strip() for t in target.split(",")]
    else:
        targets = [str(t).strip() for t in target]
    if not targets or not all(targets):
        raise ValueError(f"target must name one or more columns such as y or y1,y2, got {target!r}")
    for t in targets:
        if t not in names:
            raise ValueError(f"unknown target column {t!r}; the columns are {', '.join(names)}")
    if len(set(targets)) != len(targets):
        raise ValueError(f"target names a column twice: {target!r}")
    inputs = [n for n in names if n not in targets]
    if not inputs:
        raise ValueError(f"every column is a target ({', '.join(targets)}); no input columns left")
    index = {n: i for i, n in enumerate(names)}
    return (table[:, [index[n] for n in inputs]], table[:, [index[n] for n in targets]],
            inputs, targets)


def train_test_split(X, y, test_frac, seed):
    """The dataset dict KAN.fit takes: a random test_frac of the rows (held_out_mask) is the test
    set; both sides keep the rows in file order. X (N, n_in), y (N, n_out)."""
    X, y = np.asarray(X), np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    is_test = held_out_mask(X.shape[0], test_frac, seed)
    return {"train_input": X[~is_test], "train_label": y[~is_test],
            "test_input": X[is_test], "test_label": y[is_test]}
