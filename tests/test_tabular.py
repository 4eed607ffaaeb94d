"""Reading user data files: formats, row blocks for MPI, splits, and one-line errors."""
import numpy as np
import pytest

from kanarray.io import tabular


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


TABLE = np.array([[1.0, 2.0, 3.0], [4.0, 5.5, -6.0], [7.0, 8.0, 9.0e3], [0.5, -1.0, 2.0]])


@pytest.fixture
def csv_file(tmp_path):
    lines = "\n".join(",".join(repr(float(v)) for v in row) for row in TABLE)
    return write(tmp_path, "data.csv", "a, b ,y\n" + lines + "\n")


# ---------------------------------------------------------------------------- formats
def test_csv_with_header(csv_file):
    names, table = tabular.read_table(csv_file)
    assert names == ["a", "b", "y"]
    assert table.dtype == np.float64
    np.testing.assert_array_equal(table, TABLE)


def test_csv_blank_lines_quotes_and_windows_line_ends_are_read(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b'"a","b"\r\n1,"2"\r\n\r\n3,4\r\n')
    names, table = tabular.read_table(path)
    assert names == ["a", "b"]
    np.testing.assert_array_equal(table, [[1, 2], [3, 4]])


def test_npy_columns_are_named_c0_or_given(tmp_path):
    np.save(tmp_path / "d.npy", TABLE)
    assert tabular.read_table(tmp_path / "d.npy") == (["c0", "c1", "c2"], pytest.approx(TABLE))
    names, _ = tabular.read_table(tmp_path / "d.npy", columns=["u", "v", "w"])
    assert names == ["u", "v", "w"]
    with pytest.raises(ValueError, match="columns names 2 column"):
        tabular.read_table(tmp_path / "d.npy", columns=["u", "v"])


def test_npz_single_array_or_named_columns(tmp_path):
    np.savez(tmp_path / "one.npz", data=TABLE.astype(np.float32))
    names, table = tabular.read_table(tmp_path / "one.npz")
    assert names == ["c0", "c1", "c2"] and table.dtype == np.float64
    np.savez(tmp_path / "cols.npz", a=TABLE[:, 0], b=TABLE[:, 1].astype(int), y=TABLE[:, 2])
    names, table = tabular.read_table(tmp_path / "cols.npz")
    assert names == ["a", "b", "y"]
    np.testing.assert_array_equal(table[:, 1], TABLE[:, 1].astype(int))
    np.savez(tmp_path / "bad.npz", a=TABLE[:, 0], b=TABLE[:2, 1])
    with pytest.raises(ValueError, match="1-D columns of one length"):
        tabular.read_table(tmp_path / "bad.npz")


def test_parquet_when_pyarrow_is_installed(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": TABLE[:, 0], "n": TABLE[:, 1].astype(np.int64),
                             "y": pa.array([1.0, None, 3.0, 4.0])}), tmp_path / "d.parquet")
    with pytest.raises(ValueError, match=r"NaN or infinite values in row 2 \(first row = 1\)"):
        tabular.read_table(tmp_path / "d.parquet")
    pq.write_table(pa.table({"a": TABLE[:, 0], "s": ["x"] * 4}), tmp_path / "s.parquet")
    with pytest.raises(ValueError, match="column 's' holds string values"):
        tabular.read_table(tmp_path / "s.parquet")
    pq.write_table(pa.table({"a": TABLE[:, 0], "y": TABLE[:, 2]}), tmp_path / "ok.parquet")
    names, table = tabular.read_table(tmp_path / "ok.parquet")
    assert names == ["a", "y"]
    np.testing.assert_array_equal(table, TABLE[:, [0, 2]])


def test_parquet_without_pyarrow_names_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow...` fail
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    with pytest.raises(ImportError, match=r"needs pyarrow \(pip install pyarrow\)"):
        tabular.read_table(tmp_path / "d.parquet")


# ---------------------------------------------------------------------------- row blocks
@pytest.mark.parametrize("name", ["data.csv", "data.npy"])
def test_row_blocks_of_every_rank_concatenate_to_the_table(tmp_path, name):
    table = np.random.default_rng(0).normal(size=(11, 3))
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, table)
    else:  # blank lines inside must not shift the blocks
        lines = [",".join(repr(float(v)) for v in row) for row in table]
        path.write_text("a,b,c\n" + "\n".join(lines[:4]) + "\n\n" + "\n".join(lines[4:]) + "\n")
    n = tabular.count_rows(path)
    assert n == 11
    blocks = [tabular.read_rows(path, n * r // 3, n * (r + 1) // 3)[1] for r in range(3)]
    assert [b.shape[0] for b in blocks] == [3, 4, 4]
    np.testing.assert_array_equal(np.concatenate(blocks), table)
    assert tabular.read_rows(path, 20, 30)[1].shape == (0, 3)


def test_bad_row_in_a_block_is_numbered_in_the_whole_file(tmp_path):
    path = write(tmp_path, "d.csv", "a,b\n1,2\n3,4\n\n5,nan\n6,7\n")
    assert tabular.read_rows(path, 0, 2)[1].shape == (2, 2)  # the block before it is fine
    with pytest.raises(ValueError, match="in row 5;"):
        tabular.read_rows(path, 2, 4)
    np.save(tmp_path / "d.npy", np.array([[1.0], [2.0], [np.inf], [3.0]]))
    with pytest.raises(ValueError, match=r"in row 3 \(first row = 1\)"):
        tabular.read_rows(tmp_path / "d.npy", 1, 4)


def test_row_block_bounds_are_checked(csv_file):
    with pytest.raises(ValueError, match="lo must be an integer >= 0"):
        tabular.read_rows(csv_file, -1, 2)
    with pytest.raises(ValueError, match="hi must be None or an integer >= lo=2"):
        tabular.read_rows(csv_file, 2, 1)


# ---------------------------------------------------------------------------- user mistakes
@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("a,b,y\n", "no data rows after the header"),
    ("\n1,2\n", "the first line is blank; expected a header"),
    ("1,2,3\n4,5,6\n", "the first line holds numbers, not column names"),
    ("a,a\n1,2\n", "names column 'a' twice"),
    ("a,,c\n1,2,3\n", r"no name for column\(s\) 2"),
    ("a,b\n1,2\n3\n4,5,6\n",
     r"the header has 2 columns but row 3 has 1 \(wrong column count in rows 3, 4\)"),
    ("a,b\n1,2\n3,x\n4,5\n6,?\n", r"column 'b' has non-numeric values in rows 3, 5 \(first: 'x'\)"),
    ("a,b\n1,2\n3,\n4,5\nnan,1\n7,inf\n",
     "empty, NaN or infinite cells in rows 3, 5, 6; remove or fill"),
])
def test_csv_mistakes_give_one_line_naming_the_rows(tmp_path, text, message):
    path = write(tmp_path, "d.csv", text)
    with pytest.raises(ValueError, match=message) as info:
        tabular.read_table(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_long_row_lists_are_cut_short(tmp_path):
    path = write(tmp_path, "d.csv", "a\n" + "x\n" * 9)
    with pytest.raises(ValueError, match="rows 2, 3, 4, 5, 6 and 4 more"):
        tabular.read_table(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        tabular.read_table(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="is a folder"):
        tabular.read_table(tmp_path)


def test_array_files_with_wrong_contents(tmp_path):
    np.save(tmp_path / "one_d.npy", np.arange(3.0))
    with pytest.raises(ValueError, match=r"2-D array \(rows, columns\), got shape \(3,\)"):
        tabular.read_table(tmp_path / "one_d.npy")
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="holds <U1 values, expected numbers"):
        tabular.read_table(tmp_path / "text.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match="not a readable .npy file"):
        tabular.read_table(tmp_path / "junk.npy")


# ---------------------------------------------------------------------------- columns and splits
def test_split_columns_by_name(csv_file):
    names, table = tabular.read_table(csv_file)
    X, y, inputs, targets = tabular.split_columns(names, table, "y")
    assert (inputs, targets) == (["a", "b"], ["y"])
    np.testing.assert_array_equal(X, TABLE[:, :2])
    np.testing.assert_array_equal(y, TABLE[:, 2:])
    X, y, inputs, targets = tabular.split_columns(names, table, "y, a")
    assert (inputs, targets) == (["b"], ["y", "a"])
    np.testing.assert_array_equal(y, TABLE[:, [2, 0]])


@pytest.mark.parametrize("target, message", [
    ("z", "unknown target column 'z'; the columns are a, b, y"),
    ("y,y", "names a column twice"),
    ("a,b,y", "no input columns left"),
    ("", "target must name one or more columns"),
])
def test_split_columns_mistakes(csv_file, target, message):
    names, table = tabular.read_table(csv_file)
    with pytest.raises(ValueError, match=message):
        tabular.split_columns(names, table, target)


def test_train_test_split_is_seeded_disjoint_and_complete():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10.0).reshape(10, 1)
    data = tabular.train_test_split(X, y, 0.3, seed=4)
    assert data["test_input"].shape == (3, 2) and data["train_input"].shape == (7, 2)
    rows = np.concatenate([data["train_label"], data["test_label"]]).ravel()
    assert sorted(rows) == list(range(10))
    np.testing.assert_array_equal(data["train_input"][:, 0] / 2, data["train_label"].ravel())
    again = tabular.train_test_split(X, y, 0.3, seed=4)
    np.testing.assert_array_equal(again["test_label"], data["test_label"])
    splits = {tuple(tabular.train_test_split(X, y, 0.3, seed=s)["test_label"].ravel())
              for s in range(10)}
    assert len(splits) > 1  # the seed matters


@pytest.mark.parametrize("test_frac, n_rows, message", [
    (1.5, 10, "strictly between 0 and 1, got 1.5"),
    (0.0, 10, "strictly between 0 and 1, got 0.0"),
    ("0.2", 10, "strictly between 0 and 1"),
    (0.01, 10, "leaves no test rows"),
    (0.99, 10, "leaves no training rows"),
    (0.5, 1, "leaves no"),
])
def test_split_mistakes(test_frac, n_rows, message):
    with pytest.raises(ValueError, match=message):
        tabular.train_test_split(np.zeros((n_rows, 2)), np.zeros((n_rows, 1)), test_frac, 0)
