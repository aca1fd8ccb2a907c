"""ztensor.codec: frames, arrays, deltas, effort tiers, and the codec inside .zt files."""

import ml_dtypes
import numpy as np
import pytest

import ztensor
from ztensor import codec


@pytest.fixture
def weights(rng):
    return (rng.standard_normal(64 * 1024) * 0.02).astype(ml_dtypes.bfloat16)


@pytest.mark.parametrize("effort", codec.EFFORTS)
def test_bytes_round_trip_every_effort(weights, effort):
    raw = weights.tobytes()
    blob = codec.compress(raw, dtype="bf16", effort=effort)
    assert isinstance(blob, bytes) and blob[:4] == b"ZTC1"
    assert len(blob) < len(raw) * 0.8
    assert codec.decompress(blob) == raw
    out = bytearray(len(raw))
    assert codec.decompress(blob, out=out) is out
    assert bytes(out) == raw
    arr = np.empty(weights.shape, weights.dtype)
    codec.decompress(blob, out=arr)
    assert arr.tobytes() == raw


@pytest.mark.parametrize(
    "dtype,arr",
    [
        ("fp32", np.linspace(-1, 1, 5000, dtype=np.float32)),
        ("fp16", np.linspace(-1, 1, 5000).astype(np.float16)),
        ("fp64", np.linspace(-1, 1, 5000)),
        ("int8", np.arange(5000).astype(np.int8)),
        ("uint16", np.arange(5000).astype(np.uint16)),
        ("int64", np.arange(5000, dtype=np.int64)),
        ("bool", np.arange(5000) % 3 == 0),
        (None, np.frombuffer(b"hello world " * 300, np.uint8)),
        ("float32", np.ones(3, np.float32)),
        (np.float32, np.ones(3, np.float32)),
    ],
)
def test_dtypes(dtype, arr):
    blob = codec.compress(arr.tobytes(), dtype=dtype)
    assert codec.decompress(blob) == arr.tobytes()
    info = codec.frame_info(blob)
    assert info["decoded_length"] == arr.nbytes and info["is_delta"] is False


def test_arrays_keep_dtype_and_shape(weights, rng):
    cases = [
        weights.reshape(256, 256),
        rng.standard_normal((3, 4, 5)).astype(np.float16),
        np.arange(10, dtype=">i4"),
        np.array(1.5, dtype=np.float32),
        np.zeros((0, 3), np.int8),
        rng.standard_normal(7).astype(ml_dtypes.float8_e4m3fn),
        np.array([1 + 1j, 2], np.complex64),
    ]
    for a in cases:
        back = codec.decompress_array(codec.compress_array(a))
        assert back.shape == a.shape
        assert back.dtype == (a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype)
        assert back.tobytes() == np.ascontiguousarray(a).astype(back.dtype).tobytes()
        assert back.flags.writeable
    # Without dtype, an array is coded with its own.
    blob = codec.compress(weights)
    assert codec.frame_info(blob)["dtype"] == "bfloat16"


def test_delta_round_trip_and_wrong_reference(weights):
    ref = weights.tobytes()
    cur = weights.copy()
    cur[::20] = cur[::20] * 2
    blob = codec.compress_delta(cur.tobytes(), reference=ref, dtype="bf16")
    assert len(blob) < len(codec.compress(cur.tobytes(), dtype="bf16"))
    assert codec.frame_info(blob)["is_delta"] is True
    assert codec.decompress_delta(blob, reference=ref) == cur.tobytes()
    out = bytearray(len(ref))
    codec.decompress_delta(blob, ref, out=out)
    assert bytes(out) == cur.tobytes()
    wrong = bytearray(ref)
    wrong[0] ^= 1
    with pytest.raises(ztensor.ChecksumError):
        codec.decompress_delta(blob, reference=bytes(wrong))
    with pytest.raises(ztensor.FormatError):
        codec.decompress_delta(blob, reference=ref[:-2])
    with pytest.raises(ztensor.ZTensorError):
        codec.decompress(blob)  # a delta needs its reference
    with pytest.raises(ztensor.InvalidArgumentError):
        codec.compress_delta(b"abc", reference=b"ab")


def test_bad_input(weights):
    blob = codec.compress(weights.tobytes(), dtype="bf16")
    with pytest.raises(ztensor.ZTensorError):
        codec.decompress(blob[:-10])
    with pytest.raises(ztensor.ZTensorError):
        codec.decompress(b"not a frame")
    bad = bytearray(blob)
    bad[-1] ^= 0xFF
    with pytest.raises(ztensor.ZTensorError):
        codec.decompress(bytes(bad))
    with pytest.raises(ztensor.InvalidArgumentError):
        codec.decompress(blob, out=bytearray(3))
    with pytest.raises(ValueError):
        codec.decompress(blob, out=b"read-only" * 100)
    with pytest.raises(ztensor.LimitExceededError):
        codec.decompress(blob, max_decoded_len=100)
    with pytest.raises(ValueError):
        codec.compress(b"x", effort="turbo")
    with pytest.raises(ValueError):
        codec.compress(b"x", dtype="float128")
    with pytest.raises(ztensor.FormatError):
        codec.decompress_array(b"ZTA1\xff\xff\xff\xff")
    with pytest.raises(ztensor.FormatError):
        codec.decompress_array(blob)


def test_options(weights):
    raw = weights.tobytes()
    blob = codec.compress(raw, dtype="bf16", chunk_size=16 << 10, threads=1)
    info = codec.frame_info(blob)
    assert info["chunk_size"] == 16 << 10 and info["segments"] >= len(raw) // (16 << 10)
    assert codec.decompress(blob, threads=1) == raw
    with pytest.raises(ztensor.ZTensorError):
        codec.compress(raw, chunk_size=7)


def test_codec_in_files(tmp_path, weights):
    from ztensor.numpy import load_file, save_file

    x = {"w": weights.reshape(256, 256), "i": np.arange(1000, dtype=np.int32)}
    save_file(x, tmp_path / "c.zt", compression="codec")
    with ztensor.Writer(tmp_path / "w.zt") as w:
        w.write_numpy("w", x["w"], compress="codec:max")
        w.write_numpy("i", x["i"], compress="codec:fast", checksum="crc32c")
    for f in ("c.zt", "w.zt"):
        r = ztensor.Reader(tmp_path / f)
        assert r.metadata("w").components["data"]["encoding"] == "ztc1"
        assert r.metadata("w").components["data"]["length"] < x["w"].nbytes
        out = load_file(tmp_path / f)
        for k in x:
            assert out[k].tobytes() == x[k].tobytes() and out[k].dtype == x[k].dtype
        dst = np.empty_like(x["w"])
        r.read_into("w", dst)
        assert dst.tobytes() == x["w"].tobytes()


def test_gil_is_released_while_coding():
    import threading

    data = np.random.default_rng(0).standard_normal(1 << 19).astype(np.float32).tobytes()
    done = threading.Event()

    def work():
        for _ in range(2):
            codec.decompress(codec.compress(data, dtype="fp32", threads=1))
        done.set()

    t = threading.Thread(target=work)
    t.start()
    spins = 0
    while not done.is_set():
        spins += 1
    t.join()
    # With the GIL held through each call the loop could only run between calls.
    assert spins > 10_000
