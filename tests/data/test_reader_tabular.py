import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lkconv.data.readers.tabular import read_csv_series


def _write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_header_and_date_column_like_airline(tmp_path):
    t = read_csv_series(_write(tmp_path, "Date,Passengers\n1949-01,112\n1949-02,118\n1949-03,132\n"))
    assert t.values.shape == (3, 1) and t.columns == ["Passengers"]
    np.testing.assert_array_equal(t.values[:, 0], [112, 118, 132])
    assert t.index == ["1949-01", "1949-02", "1949-03"] and t.index_name == "Date"
    np.testing.assert_array_equal(t["Passengers"], [112, 118, 132])


def test_pandas_unnamed_index_is_not_a_series(tmp_path):
    # Lynx style: the unnamed first column is the index
    t = read_csv_series(_write(tmp_path, ",0\n1821,269\n1822,321\n"))
    assert t.columns == ["0"] and t.index == ["1821", "1822"] and t.index_name == ""
    # Uschange style: unnamed RangeIndex plus a text date column; several series
    text = ',Quarter,A,B\n0,1970 Q1,0.5,"1.5"\n1,1970 Q2,,2.5\n2,1970 Q3,NA,3.5\n'
    t = read_csv_series(_write(tmp_path, text, "u.csv"))
    assert t.columns == ["A", "B"] and t.index_name == "Quarter" and t.index[0] == "1970 Q1"
    assert t.values.shape == (3, 2) and np.isnan(t.values[1:, 0]).all()
    assert t.metadata["dropped_columns"] == [""]


def test_no_header_delimiters_and_column_choice(tmp_path):
    t = read_csv_series(_write(tmp_path, "1;2;3\n4;5;6\n", "s.csv"))
    assert not t.metadata["header"] and t.columns == ["0", "1", "2"] and t.index is None
    np.testing.assert_array_equal(t.values, [[1, 2, 3], [4, 5, 6]])
    t = read_csv_series(_write(tmp_path, "a\tb\tlabel\n1\t2\tx\n3\t4\ty\n", "t.tsv"), columns=["b"])
    np.testing.assert_array_equal(t.values[:, 0], [2, 4])
    t = read_csv_series(_write(tmp_path, "1 2\n3 4\n", "w.txt"), index_col=0)
    assert t.index == ["1", "3"] and t.columns == ["1"]


def test_errors_name_file_line_and_column(tmp_path):
    with pytest.raises(ValueError, match=r"r\.csv:3: row has 3 fields, the first row has 2"):
        read_csv_series(_write(tmp_path, "a,b\n1,2\n3,4,5\n", "r.csv"))
    with pytest.raises(ValueError, match=r"n\.csv:3: column 'b' has non-numeric cell 'oops'"):
        read_csv_series(_write(tmp_path, "a,b\n1,2\n3,oops\n", "n.csv"), columns=["b"])
    with pytest.raises(ValueError, match=r"columns \['zz'\] not found"):
        read_csv_series(_write(tmp_path, "a,b\n1,2\n", "z.csv"), columns=["zz"])
    with pytest.raises(ValueError, match="no data rows"):
        read_csv_series(_write(tmp_path, "# only a comment\n", "e.csv"))


def test_sktime_forecasting_csvs_if_installed():
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("sktime (only its bundled CSV files are used) is not installed")
    root = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    expected = {"Airline": 144, "ShampooSales": 36, "Lynx": 114, "PBS_dataset": 204}
    for name, length in expected.items():
        t = read_csv_series(root / name / f"{name}.csv")
        assert t.values.shape == (length, 1) and np.isfinite(t.values).all(), name
    us = read_csv_series(root / "Uschange" / "Uschange.csv")
    assert us.values.shape == (187, 5) and us.index_name == "Quarter"
