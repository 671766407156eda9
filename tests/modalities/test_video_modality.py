"""Video adapter layouts, folder data for each container, Moving Fashion-MNIST and an end-to-end run."""

import numpy as np
import pytest
import torch

from lkconv.data import DataError
from lkconv.engine.config import TrainConfig
from lkconv.modalities import build_adapter
from lkconv.modalities.image.builtin import FASHION_MNIST_DIR
from lkconv.modalities.video.adapter import VideoAdapter, grid_shape, video_to_map
from lkconv.modalities.video.builtin import moving_fashion_clip
from lkconv.modalities.video.data import build_data, load_for_predict

TINY = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [7], [7], [7]]}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: two threads on a shared, oversubscribed CPU mostly wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _toy(b=2, t=16, c=2, h=8, w=6):
    """x[b, t, c, i, j] = a unique code of (b, t, c, i, j)."""
    idx = torch.meshgrid(*(torch.arange(n) for n in (b, t, c, h, w)), indexing="ij")
    return idx[0] * 1e6 + idx[1] * 1e4 + idx[2] * 1e3 + idx[3] * 10 + idx[4], (b, t, c, h, w)


# ------------------------------------------------------------------------------------------------- layouts
def test_reference_is_the_raw_memory_order_reshape():
    x, (b, t, c, h, w) = _toy()
    out = video_to_map(x, "reference")
    s = 4
    assert out.shape == (b, c, h * s, w * s)
    torch.testing.assert_close(out, x.permute(0, 2, 1, 3, 4).reshape(b, c, h * s, w * s))
    rows_per_frame = h // s
    for frame in range(t):
        block = out[:, :, frame * rows_per_frame : (frame + 1) * rows_per_frame]
        # every value in output rows [t·H/s, (t+1)·H/s) comes from frame t ...
        assert ((block // 1e4) % 100 == frame).all()
        # ... and output row r holds s consecutive source rows of that frame, side by side
        for r in range(rows_per_frame):
            for seg in range(s):
                src_row = r * s + seg
                torch.testing.assert_close(block[:, :, r, seg * w : (seg + 1) * w], x[:, frame, :, src_row])
    # not a tiling: frame 1 does not sit to the right of frame 0
    assert not torch.equal(out[:, :, :h, w : 2 * w], x[:, 1])


def test_reference_224_geometry_frame_t_in_rows_56t():
    x = torch.arange(16, dtype=torch.float32).view(1, 16, 1, 1, 1).expand(1, 16, 3, 224, 224)
    out = video_to_map(x, "reference")
    assert out.shape == (1, 3, 896, 896)
    for frame in range(16):
        assert (out[0, :, 56 * frame : 56 * frame + 56] == frame).all()


def test_grid_layout_tiles_frames():
    x, (b, t, c, h, w) = _toy()
    out = video_to_map(x, "grid")
    assert out.shape == (b, c, 4 * h, 4 * w)
    for frame in range(t):
        r, col = divmod(frame, 4)
        torch.testing.assert_close(out[:, :, r * h : (r + 1) * h, col * w : (col + 1) * w], x[:, frame])


def test_grid_layout_pads_non_square_counts():
    x = torch.rand(1, 5, 1, 4, 4)
    assert grid_shape(5) == (2, 3)
    out = video_to_map(x, "grid")
    assert out.shape == (1, 1, 8, 12)
    torch.testing.assert_close(out[0, 0, 4:, 4:8], x[0, 4, 0])
    assert (out[0, 0, 4:, 8:] == 0).all()


def test_channels_layout_is_frame_major():
    x, (b, t, c, h, w) = _toy()
    out = video_to_map(x, "channels")
    assert out.shape == (b, t * c, h, w)
    torch.testing.assert_close(out[:, 5 * c + 1], x[:, 5, 1])


def test_adapter_normalises_accepts_uint8_and_rebuilds():
    a = build_adapter("video", num_frames=4, in_chans=3, layout="grid")
    u8 = torch.full((2, 4, 3, 8, 8), 255, dtype=torch.uint8)
    out = a(u8)
    assert out.shape == (2, 3, 16, 16) and a.out_chans == 3
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    torch.testing.assert_close(a(u8.float() / 255), out)
    assert VideoAdapter(**a.config()).config() == a.config()
    assert build_adapter("video", num_frames=4, in_chans=1, layout="channels").out_chans == 4


def test_adapter_errors_name_what_is_accepted():
    with pytest.raises(ValueError, match="reference, grid, channels"):
        VideoAdapter(layout="tubes")
    with pytest.raises(ValueError, match="square num_frames"):
        VideoAdapter(num_frames=8, layout="reference")
    with pytest.raises(ValueError, match=r"\(B, 16, 3, H, W\)"):
        VideoAdapter()(torch.zeros(1, 8, 3, 8, 8))
    with pytest.raises(ValueError, match="divisible"):
        video_to_map(torch.zeros(1, 16, 1, 6, 6), "reference")


# ---------------------------------------------------------------------------------------------- folders
def _write_clip(path, codec, n=10, size=32, moving="right"):
    av = pytest.importorskip("av")
    if codec not in av.codecs_available:
        pytest.skip(f"FFmpeg in this PyAV build has no {codec} encoder")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for i in range(n):
            image = np.zeros((size, size, 3), dtype=np.uint8)
            x0 = 2 + 2 * i if moving == "right" else size - 10 - 2 * i
            image[12:20, x0 : x0 + 8] = 230
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize(("ext", "codec"), [("mp4", "mpeg4"), ("avi", "mpeg4"), ("mkv", "mpeg4"),
                                            ("webm", "libvpx")])
def test_folder_dataset_each_container(tmp_path, ext, codec):
    for split in ("train", "val"):
        for cls in ("left", "right"):
            (tmp_path / split / cls).mkdir(parents=True)
            _write_clip(tmp_path / split / cls / f"a.{ext}", codec, moving=cls)
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), modality="video", img_size=16,
                      modality_args={"num_frames": 4, "layout": "grid"})
    bundle = build_data(cfg)
    assert bundle.class_names == ["left", "right"] and bundle.raw_shape == (4, 3, 16, 16)
    assert bundle.adapter == "video" and bundle.adapter_args == {"num_frames": 4, "in_chans": 3, "layout": "grid"}
    x, y = bundle.val[1]
    assert x.shape == (4, 3, 16, 16) and 0 <= float(x.min()) and float(x.max()) <= 1 and int(y) == 1
    # the bright square moves right: its column centroid grows over the sampled frames
    cols = torch.arange(16, dtype=torch.float32)
    cx = [(x[t].mean(0).sum(0) * cols).sum() / x[t].mean(0).sum() for t in range(4)]
    assert cx[0] < cx[1] < cx[2] < cx[3]
    pred = load_for_predict(tmp_path / "val" / "right" / f"a.{ext}", bundle.preprocessing)
    torch.testing.assert_close(pred, x)
    assert bundle.train[0][0].shape == (4, 3, 16, 16)


def test_folder_options_are_checked(tmp_path):
    (tmp_path / "a").mkdir()
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), modality="video",
                      modality_args={"num_frame": 4})
    with pytest.raises(DataError, match="unknown video option"):
        build_data(cfg)
    cfg = cfg.replace(modality_args={"num_frames": 8, "layout": "reference"})
    with pytest.raises(DataError, match="square num_frames"):
        build_data(cfg)


# ---------------------------------------------------------------------------------------- moving-fashion
def _torus_shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(rows, cols) by which ``b`` is ``a`` rolled on the torus (peak of the circular cross-correlation)."""
    corr = np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))).real
    r, c = np.unravel_index(np.argmax(corr), corr.shape)
    n = a.shape[0]
    return (r - n if r > n // 2 else r), (c - n if c > n // 2 else c)


def test_moving_fashion_clip_moves_in_its_direction():
    img = np.zeros((28, 28), np.uint8)
    img[5:20, 8:14] = 255
    img[5:8, 8:24] = 255  # an asymmetric shape
    for direction, (dr, dc) in enumerate([(0, 1), (-1, 0), (0, -1), (1, 0)]):  # right, up, left, down
        clip = moving_fashion_clip(img, direction, 4, np.random.default_rng(direction))
        assert clip.shape == (16, 64, 64) and clip.dtype == np.float32
        rows, cols = _torus_shift(clip[0], clip[4])
        assert (np.sign(rows), np.sign(cols)) == (dr, dc), (direction, rows, cols)
        assert 6 <= abs(rows) + abs(cols) <= 12  # 4 frames at 1.5-3 px/frame
    # 8 directions: diagonals move along both axes
    clip = moving_fashion_clip(img, 1, 8, np.random.default_rng(0))  # up-right
    rows, cols = _torus_shift(clip[0], clip[8])
    assert rows < 0 and cols > 0


needs_fmnist = pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                                  reason="dataset-fashion-mnist is not installed")


@needs_fmnist
def test_moving_fashion_bundle_is_deterministic():
    cfg = TrainConfig(data="builtin:moving-fashion", out="/tmp/unused", modality="video", img_size=32,
                      modality_args={"directions": 4, "train_clips": 40, "val_clips": 8, "layout": "grid"})
    from lkconv.modalities import build_data as build_any

    a, b = build_any(cfg), build_any(cfg)
    assert a.class_names == ["right", "up", "left", "down"] and a.raw_shape == (16, 1, 32, 32)
    assert len(a.train) == 40 and len(a.val) == 8
    torch.testing.assert_close(a.val[3][0], b.val[3][0])
    first = a.train[0][0]
    a.train.set_epoch(1)
    assert not torch.equal(first, a.train[0][0])  # fresh training clips each epoch
    assert [int(a.val[i][1]) for i in range(8)] == [0, 1, 2, 3] * 2


def test_train_end_to_end_beats_chance(tmp_path):
    """A square moving left or right (random start, speed and size; mp4 files): a tiny model must beat chance on
    held-out clips. A single frame cannot tell the classes apart, only the frame order can."""
    av = pytest.importorskip("av")
    if "mpeg4" not in av.codecs_available:
        pytest.skip("FFmpeg in this PyAV build has no mpeg4 encoder")
    from lkconv.engine.evaluate import evaluate_run, predict_files
    from lkconv.engine.trainer import train

    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("val", 6)):
        for cls, sign in (("left", -1), ("right", 1)):
            (tmp_path / "clips" / split / cls).mkdir(parents=True)
            for i in range(n):
                side, speed = int(rng.integers(8, 12)), float(rng.uniform(2.0, 3.0))
                row, x0 = int(rng.integers(0, 32 - side)), float(rng.uniform(12 - side / 2, 20 - side / 2))
                with av.open(str(tmp_path / "clips" / split / cls / f"{i}.mp4"), "w") as container:
                    stream = container.add_stream("mpeg4", rate=10)
                    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
                    for t in range(8):
                        image = np.zeros((32, 32, 3), np.uint8)
                        col = round(x0 + sign * speed * (t - 3.5))
                        image[row : row + side, max(col, 0) : max(col + side, 0)] = 220
                        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                            container.mux(packet)
                    for packet in stream.encode():
                        container.mux(packet)
    cfg = TrainConfig(data=str(tmp_path / "clips"), out=str(tmp_path / "run"), modality="video", img_size=16,
                      epochs=8, batch_size=8, lr=4e-3, warmup_epochs=0, label_smoothing=0.0, model_args=TINY,
                      seed=0, progress=False,
                      modality_args={"num_frames": 4, "channels": 1, "layout": "grid", "aug": "none"})
    run = train(cfg)
    metrics = evaluate_run(run)
    assert metrics["num_samples"] == 12 and metrics["accuracy"] > 0.5
    top = predict_files(run, [tmp_path / "clips" / "val" / "left" / "0.mp4"])
    assert top[0]["top"][0][0] in ("left", "right")


def test_predict_refuses_what_a_training_folder_would_not_hold(tmp_path):
    """Issue 14: FFmpeg opens a PNG as a one-frame clip; predict reads the video extensions only, and a cut file is a
    DataError saying what is accepted."""
    from PIL import Image

    pre = {"img_size": 16, "num_frames": 2, "channels": 3}
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "frame.png")
    with pytest.raises(DataError, match=r"^not a video file \(suffix '\.png'\); accepted: \.mp4, \.avi"):
        load_for_predict(tmp_path / "frame.png", pre)  # was: a prediction
    pytest.importorskip("av")
    good = _write_clip(tmp_path / "a.mp4", "mpeg4", moving="left")
    (tmp_path / "cut.mp4").write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match=r"accepted: \.mp4, \.avi, \.mkv, \.webm, \.mov video files$"):
        load_for_predict(tmp_path / "cut.mp4", pre)
