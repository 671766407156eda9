import importlib.util
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lkconv.data.readers.ts import read_series, read_series_npz, read_ts


def _write(tmp_path: Path, text: str, name: str = "x.ts") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


UNIVARIATE = """
# a comment before the header
% an ARFF-style comment
@problemName Tiny
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true a b c
@data
1.0,2.0,3.0,4.0:a

  0.5, -1e-3 ,2,3:c
# comment between cases
4,3,2,1:b
"""


def test_univariate_equal_length_with_labels_and_comments(tmp_path):
    d = read_ts(_write(tmp_path, UNIVARIATE))
    assert d.X.shape == (3, 1, 4) and d.X.dtype == np.float32
    np.testing.assert_allclose(d.X[1, 0], [0.5, -1e-3, 2, 3], rtol=1e-6)
    assert d.labels.tolist() == ["a", "c", "b"]
    assert d.class_labels == ["a", "b", "c"]
    np.testing.assert_array_equal(d.label_indices(), [0, 2, 1])
    np.testing.assert_array_equal(d.lengths, [4, 4, 4])
    assert d.equal_length and d.targets is None and d.timestamps is None
    assert d.metadata["problem_name"] == "Tiny" and d.metadata["univariate"] is True
    assert d.metadata["series_length"] == 4 and d.metadata["has_missing"] is False
    assert d.metadata["line_of_case"] == [11, 13, 15]


def test_multivariate_unequal_missing_case_insensitive_tags(tmp_path):
    text = """
    @PROBLEMNAME Multi
    @TimeStamps FALSE
    @MISSING true
    @univariate False
    @Dimensions 2
    @EQUALLENGTH false
    @classlabel True up down
    @DATA
    1,2,3,?:4,5,6:up
    1,NaN:3,4,5,6,7:down
    9:8:up
    """
    d = read_ts(_write(tmp_path, text), dtype=np.float64)
    assert d.X.shape == (3, 2, 5) and d.X.dtype == np.float64
    np.testing.assert_array_equal(d.lengths, [4, 5, 1])
    assert np.isnan(d.X[0, 0, 3]) and np.isnan(d.X[1, 0, 1])
    assert np.isnan(d.X[0, 0, 4]) and np.isnan(d.X[2, 1, 1:]).all()  # padding
    np.testing.assert_array_equal(d.X[1, 1], [3, 4, 5, 6, 7])
    assert d.metadata["has_missing"] and d.metadata["missing"] and not d.metadata["equal_length"]
    assert not d.equal_length
    assert d.labels.tolist() == ["up", "down", "up"]


def test_multivariate_without_dimensions_tag_infers_from_first_case(tmp_path):
    text = """
    @problemName NoDims
    @univariate false
    @classLabel false
    @data
    1,2:3,4:5,6
    7,8:9,10:11,12
    """
    d = read_ts(_write(tmp_path, text))
    assert d.X.shape == (2, 3, 2) and d.labels is None and d.class_labels is None
    with pytest.raises(ValueError, match="has no class labels"):
        d.label_indices()


def test_class_label_false_univariate_no_label_column(tmp_path):
    text = """
    @problemName Unlabelled
    @univariate true
    @classLabel false
    @data
    1,2,3
    4,5,6
    """
    d = read_ts(_write(tmp_path, text))
    assert d.X.shape == (2, 1, 3) and d.labels is None


def test_target_label_regression(tmp_path):
    text = """
    @problemname Reg
    @timestamps false
    @univariate true
    @equallength true
    @targetlabel true
    @data
    1,2,3:0.25
    4,5,6:-1.5e2
    """
    d = read_ts(_write(tmp_path, text))
    np.testing.assert_allclose(d.targets, [0.25, -150.0])
    assert d.labels is None and d.class_labels is None


def test_timestamps_with_dates_and_numbers(tmp_path):
    text = """
    @problemName Stamped
    @timeStamps true
    @missing true
    @univariate false
    @dimensions 2
    @equalLength false
    @classLabel true x y
    @data
    (2007-01-01 00:00:00,241.97),(2007-01-01 00:00:01,?):(0,1.5),(2,2.5),(4,3.5):x
    (2007-01-01 00:00:00,1.0):(1,NaN):y
    """
    d = read_ts(_write(tmp_path, text))
    assert d.X.shape == (2, 2, 3)
    np.testing.assert_allclose(d.X[0, 0, :1], [241.97], rtol=1e-6)
    assert np.isnan(d.X[0, 0, 1])
    np.testing.assert_allclose(d.X[0, 1], [1.5, 2.5, 3.5])
    assert d.timestamps[0][0].tolist() == ["2007-01-01 00:00:00", "2007-01-01 00:00:01"]
    np.testing.assert_array_equal(d.timestamps[0][1], [0.0, 2.0, 4.0])
    assert d.labels.tolist() == ["x", "y"]


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("@univariate true\n@classLabel true a b\n@data\n1,2,3:z\n", r"x\.ts:4: class label 'z' is not among"),
        ("@univariate false\n@dimensions 2\n@classLabel true a\n@data\n1,2:a\n", r"x\.ts:5: found 1 ':'-separated"),
        ("@univariate true\n@classLabel false\n@data\n1,abc,3\n", r"x\.ts:4: dimension 0, value 1: 'abc'"),
        ("@univariate true\n@classLabel true a\n1,2:a\n", r"x\.ts:3: expected a '@tag' header line"),
        ("@univariate true\n@classLabel true a\n", r"no '@data' line"),
        ("@univariate true\n@classLabel true\n@data\n", r"x\.ts:2: @classLabel true must list"),
        ("@univariate maybe\n@data\n", r"x\.ts:1: @univariate takes 'true' or 'false'"),
        ("@classLabel true a\n@targetLabel true\n@data\n", r"x\.ts:3: both @classLabel true and @targetLabel"),
        ("@univariate true\n@equalLength true\n@seriesLength 3\n@classLabel false\n@data\n1,2,3\n1,2\n", r"x\.ts:7:"),
        ("@univariate true\n@classLabel true a\n@data\n1,2,3\n", r"x\.ts:4: the header declares a label"),
        ("@dimensions two\n@data\n", r"x\.ts:1: @dimensions takes a positive integer"),
        ("@univariate true\n@targetLabel true\n@data\n1,2:high\n", r"x\.ts:4: regression target 'high'"),
        ("@missing false\n@missing true\n@data\n", r"x\.ts:2: @missing repeated"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, body, pattern):
    path = tmp_path / "x.ts"
    path.write_text(body)
    with pytest.raises(ValueError, match=pattern):
        read_ts(path)


def test_npz_layouts(tmp_path):
    X = np.arange(24, dtype=np.float64).reshape(4, 2, 3)
    X[3, :, 2] = np.nan  # a shorter case
    np.savez(tmp_path / "a.npz", X=X, y=np.array([2, 0, 2, 1]))
    d = read_series(tmp_path / "a.npz")
    assert d.X.shape == (4, 2, 3) and d.X.dtype == np.float32
    np.testing.assert_array_equal(d.lengths, [3, 3, 3, 2])
    assert d.labels.tolist() == ["2", "0", "2", "1"] and d.class_labels == ["0", "1", "2"]
    np.testing.assert_array_equal(d.label_indices(), [2, 0, 2, 1])
    assert not d.metadata["has_missing"]

    np.savez(tmp_path / "b.npz", X=np.zeros((3, 5)), y=np.array([0.5, 1.0, 2.0]))
    d = read_series_npz(tmp_path / "b.npz")
    assert d.X.shape == (3, 1, 5) and d.labels is None
    np.testing.assert_allclose(d.targets, [0.5, 1.0, 2.0])

    np.savez(
        tmp_path / "c.npz", X=np.zeros((2, 1, 4)), y=np.array(["cat", "dog"]), class_labels=np.array(["dog", "cat"])
    )
    d = read_series_npz(tmp_path / "c.npz")
    assert d.class_labels == ["dog", "cat"]
    np.testing.assert_array_equal(d.label_indices(), [1, 0])


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "nox.npz", data=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="no 'X' array"):
        read_series_npz(tmp_path / "nox.npz")
    np.savez(tmp_path / "shape.npz", X=np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4, 5\)"):
        read_series_npz(tmp_path / "shape.npz")
    np.savez(tmp_path / "y.npz", X=np.zeros((2, 3)), y=np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="'y' has 3 entries but 'X' has 2"):
        read_series_npz(tmp_path / "y.npz")
    with pytest.raises(ValueError, match=r"accepted: \.ts, \.npz"):
        read_series(tmp_path / "x.csv")


def test_real_sktime_files_if_installed():
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("sktime (only its bundled .ts files are used) is not installed")
    root = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    gun = read_ts(root / "GunPoint" / "GunPoint_TRAIN.ts")
    assert gun.X.shape == (50, 1, 150) and sorted(set(gun.labels.tolist())) == ["1", "2"]
    vowels = read_ts(root / "JapaneseVowels" / "JapaneseVowels_TEST.ts")
    assert vowels.n_channels == 12 and vowels.n_samples == 370 and not vowels.equal_length
    covid = read_ts(root / "Covid3Month" / "Covid3Month_TRAIN.ts")
    assert covid.targets is not None and covid.targets.shape == (140,)
