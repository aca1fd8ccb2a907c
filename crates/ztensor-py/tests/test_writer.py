"""ztensor.Writer, Tensor formats, remove_tensors, replace_tensor, convert."""

import os

import ml_dtypes
import numpy as np
import pytest

import ztensor
from ztensor.numpy import load_file, save_file


def test_write_methods_and_finish(tmp_path):
    path = tmp_path / "w.zt"
    w = ztensor.Writer(path)
    assert not w.finished and "open" in repr(w)
    w.write("t", ztensor.Tensor({"data": np.ones((3, 4), np.float32)}))
    w.write_numpy("n", np.arange(5, dtype=np.int8), compress=3, checksum="crc32c")
    w.add("legacy", np.zeros(2, np.float16))
    w.write_numpy("c", np.arange(1000, dtype=np.float32), compress="codec:fast", checksum="sha256")
    assert "n" in w and "zz" not in w
    assert not path.exists()  # nothing under the final name until finish
    size = w.finish()
    assert size == os.path.getsize(path) and w.finished
    with pytest.raises(ztensor.InvalidArgumentError):
        w.write_numpy("late", np.zeros(1))
    with pytest.raises(ztensor.InvalidArgumentError):
        w.finish()
    r = ztensor.Reader(path)
    assert r.keys() == ["c", "legacy", "n", "t"]
    assert r.metadata("c").components["data"]["encoding"] == "ztc1"
    assert np.array_equal(r.read_numpy("c"), np.arange(1000, dtype=np.float32))
    assert r.verify() == 2


def test_exception_inside_with_leaves_nothing(tmp_path):
    path = tmp_path / "out.zt"
    with pytest.raises(RuntimeError):
        with ztensor.Writer(path) as w:
            w.write_numpy("a", np.zeros(100))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    # A writer dropped unfinished leaves nothing either.
    w = ztensor.Writer(path)
    w.write_numpy("a", np.zeros(10))
    del w
    assert os.listdir(tmp_path) == []


def test_failing_save_file_keeps_the_old_file(tmp_path):
    path = tmp_path / "m.zt"
    save_file({"a": np.ones(3)}, path)
    before = path.read_bytes()
    with pytest.raises(ztensor.UnsupportedError):
        save_file({"b": np.ones(3), "c": np.array(["x"])}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.zt"]


def test_append(tmp_path):
    path = tmp_path / "a.zt"
    save_file({"a": np.arange(3, dtype=np.float32)}, path)
    w = ztensor.Writer.append(path)
    w.write_numpy("b", np.arange(4, dtype=np.int32))
    with pytest.raises(ztensor.DuplicateNameError) as e:
        w.write_numpy("a", np.zeros(1))
    assert isinstance(e.value, ValueError)
    w.finish()
    out = load_file(path)
    assert sorted(out) == ["a", "b"] and out["b"].tolist() == [0, 1, 2, 3]
    # An append that fails is rolled back to the file as it was.
    before = path.read_bytes()
    with pytest.raises(KeyError):
        with ztensor.Writer.append(path) as w:
            w.write_numpy("c", np.zeros(1000))
            raise KeyError("abort")
    assert path.read_bytes() == before
    with pytest.raises(FileNotFoundError):
        ztensor.Writer.append(tmp_path / "missing.zt")


def test_tensor_formats_round_trip(tmp_path):
    csr = ztensor.Tensor(
        {
            "values": np.array([1.5, 2.5, 3.5], np.float32),
            "indices": np.array([0, 3, 1], np.uint64),
            "indptr": np.array([0, 2, 2, 3], np.uint64),
        },
        shape=[3, 4],
        format="sparse_csr",
    )
    coo = ztensor.Tensor(
        {"values": np.array([7, 8], np.int16), "coords": np.array([0, 1, 2, 0], np.uint64)},
        shape=[2, 3],
        format="sparse_coo",
    )
    quant = ztensor.Tensor(
        {
            "packed_weight": np.arange(16, dtype=np.uint8),
            "scales": np.ones(4, np.float16),
            "zeros": np.zeros(4, np.float16),
        },
        shape=[4, 8],
        format="quantized_group",
        attributes={"bits": 4, "group_size": 8},
    )
    fp8 = ztensor.Tensor({"data": np.arange(6, dtype=np.uint8).reshape(2, 3)}, type="f8_e4m3fn")
    dense = ztensor.Tensor({"data": np.ones(3, ml_dtypes.bfloat16)}, attributes={"role": "x"})
    path = tmp_path / "f.zt"
    with ztensor.Writer(path) as w:
        for name, t in [("csr", csr), ("coo", coo), ("q", quant), ("fp8", fp8), ("d", dense)]:
            w.write(name, t, compress=True, checksum="crc32c")
    r = ztensor.Reader(path)
    for name, t in [("csr", csr), ("coo", coo), ("q", quant), ("d", dense)]:
        assert r.read(name) == t, name
        assert r.read(name, copy=True) == t
    got = r.read("fp8")
    assert got.type == "f8_e4m3fn" and got.dtype == "uint8"
    assert got.numpy().dtype == ml_dtypes.float8_e4m3fn
    assert got.numpy().view(np.uint8).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert r.metadata("q").attributes == {"bits": 4, "group_size": 8}
    with pytest.raises(ztensor.NotDenseError):
        got = r.read("csr").numpy()
    # The writer refuses inconsistent sparse data.
    bad = ztensor.Tensor(
        {"values": np.ones(2, np.float32), "indices": np.array([0, 9], np.uint64),
         "indptr": np.array([0, 2], np.uint64)},
        shape=[1, 4], format="sparse_csr",
    )
    with pytest.raises(ztensor.ZTensorError):
        with ztensor.Writer(tmp_path / "bad.zt") as w:
            w.write("bad", bad)
    assert not (tmp_path / "bad.zt").exists()


def test_tensor_construction():
    t = ztensor.Tensor({"data": np.ones((3, 4), np.float32)})
    assert (t.shape, t.dtype, t.type, t.format, t.attributes) == ([3, 4], "float32", None, "dense", None)
    assert "float32" in repr(t)
    with pytest.raises(TypeError):
        ztensor.Tensor([1])
    with pytest.raises(ValueError):
        ztensor.Tensor({"values": np.ones(2)}, format="sparse_csr", shape=[2, 2])
    with pytest.raises(ValueError):
        ztensor.Tensor({"values": np.ones(2), "coords": np.zeros(2, np.uint64)}, format="sparse_coo")
    c = ztensor.Tensor({"data": np.ones(2, np.complex64)})
    assert (c.dtype, c.type) == ("float32", "complex64")


def test_writer_arguments(tmp_path):
    with ztensor.Writer(tmp_path / "x.zt") as w:
        with pytest.raises(ValueError):
            w.write_numpy("a", np.zeros(2), checksum="md5")
        with pytest.raises(TypeError):
            w.write("a", np.zeros(2))
        with pytest.raises(TypeError):
            w.set_metadata([1])
        w.set_metadata({"blob": b"\x00\x01", "pi": 3.14, "big": 2**63})
    assert ztensor.Reader(tmp_path / "x.zt").metadata() == {"blob": b"\x00\x01", "pi": 3.14, "big": 2**63}


def test_remove_tensors(tmp_path):
    src = tmp_path / "src.zt"
    with ztensor.Writer(src) as w:
        w.set_metadata({"k": "v"})
        w.write_numpy("a", np.ones(3), compress=True, checksum="crc32c")
        w.write_numpy("b", np.zeros(3))
        w.write_numpy("c", np.arange(3))
    ztensor.remove_tensors(src, tmp_path / "out.zt", ["b"])
    r = ztensor.Reader(tmp_path / "out.zt")
    assert r.keys() == ["a", "c"] and r.metadata() == {"k": "v"}
    assert r.metadata("a").components["data"]["encoding"] == "zstd"
    assert r.metadata("a").components["data"]["digest"].startswith("crc32c:")
    ztensor.remove_tensors(src, src, "c")  # in place, single name
    assert ztensor.Reader(src).keys() == ["a", "b"]
    with pytest.raises(KeyError):
        ztensor.remove_tensors(src, tmp_path / "none.zt", ["nope"])
    assert not (tmp_path / "none.zt").exists()


def test_replace_tensor(tmp_path):
    path = tmp_path / "r.zt"
    with ztensor.Writer(path) as w:
        w.write_numpy("w", np.zeros((2, 3), np.float32), checksum="sha256")
        w.write_numpy("z", np.zeros(3), compress=True)
    ztensor.replace_tensor(path, "w", np.full((2, 3), 7, np.float32))
    r = ztensor.Reader(path)
    assert r.read_numpy("w").tolist() == [[7] * 3] * 2
    assert r.verify() == 1
    with pytest.raises(ztensor.FormatError):  # wrong size
        ztensor.replace_tensor(path, "w", np.zeros(5, np.float32))
    with pytest.raises(ztensor.UnsupportedError):  # compressed
        ztensor.replace_tensor(path, "z", np.zeros(3))
    with pytest.raises(KeyError):
        ztensor.replace_tensor(path, "nope", np.zeros(3))
    torch = pytest.importorskip("torch")
    ztensor.replace_tensor(path, "w", torch.ones(2, 3))
    assert ztensor.Reader(path).read_numpy("w").sum() == 6


def test_convert(tmp_path):
    from safetensors.numpy import save_file as st_save

    st_save({"x": np.arange(4, dtype=np.float32)}, str(tmp_path / "a.safetensors"), metadata={"m": "1"})
    np.savez(tmp_path / "b.npz", y=np.ones(2))
    summary = ztensor.convert(
        [tmp_path / "a.safetensors", tmp_path / "b.npz"], tmp_path / "ab.zt",
        compression="codec", checksum="crc32c",
    )
    assert summary["tensors"] == 2 and summary["file_size"] == os.path.getsize(tmp_path / "ab.zt")
    out = load_file(tmp_path / "ab.zt")
    assert out["x"].tolist() == [0, 1, 2, 3] and out["y"].tolist() == [1, 1]
    ztensor.convert(tmp_path / "a.safetensors", tmp_path / "a.zt", restorable=True)
    ztensor.convert_to_safetensors(tmp_path / "a.zt", tmp_path / "back.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes() == (tmp_path / "a.safetensors").read_bytes()
