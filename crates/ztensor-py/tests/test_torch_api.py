"""ztensor.torch: the safetensors.torch drop-in, models, every torch dtype, devices."""

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
import safetensors.torch as st  # noqa: E402

import ztensor  # noqa: E402
from ztensor.torch import load, load_file, load_model, save, save_file, save_model  # noqa: E402

from conftest import has_cuda  # noqa: E402


def all_dtypes():
    g = torch.Generator().manual_seed(0)
    out = {
        "f64": torch.randn(3, 4, dtype=torch.float64, generator=g),
        "f32": torch.randn(5, generator=g),
        "f16": torch.randn(2, 2, generator=g).half(),
        "bf16": torch.randn(4, 3, generator=g).bfloat16(),
        "i64": torch.arange(-5, 5),
        "i32": torch.arange(6, dtype=torch.int32),
        "i16": torch.arange(6, dtype=torch.int16),
        "i8": torch.arange(-3, 3, dtype=torch.int8),
        "u8": torch.arange(200, 206, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "c64": torch.randn(3, dtype=torch.complex64, generator=g),
        "c128": torch.randn(2, 2, dtype=torch.complex128, generator=g),
        "e4m3": torch.randn(8, generator=g).to(torch.float8_e4m3fn),
        "e5m2": torch.randn(8, generator=g).to(torch.float8_e5m2),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    for name in ("uint16", "uint32", "uint64"):
        if hasattr(torch, name):
            out[name] = torch.arange(4).to(getattr(torch, name))
    return out


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    ua = a.cpu().contiguous().reshape(-1).view(torch.uint8)
    ub = b.cpu().contiguous().reshape(-1).view(torch.uint8)
    assert torch.equal(ua, ub)


@pytest.mark.parametrize("compression", [False, True, "codec"])
@pytest.mark.parametrize("copy", [False, True])
def test_round_trip_every_dtype(tmp_path, compression, copy):
    tensors = all_dtypes()
    save_file(tensors, tmp_path / "t.zt", metadata={"a": "b"}, compression=compression)
    loaded = load_file(tmp_path / "t.zt", copy=copy)
    assert set(loaded) == set(tensors)
    for k, v in tensors.items():
        same(loaded[k], v)


def test_zero_copy_tensors_are_writable_and_private(tmp_path):
    x = torch.arange(4096, dtype=torch.float32)
    path = tmp_path / "x.zt"
    save_file({"x": x}, path)
    before = path.read_bytes()
    r = ztensor.Reader(path)
    t = r.read_torch("x")
    lo, n = r._map_range()
    assert lo <= t.data_ptr() < lo + n
    t.add_(1)
    assert path.read_bytes() == before
    same(load_file(path)["x"], x)


def test_bytes_api():
    tensors = {"a": torch.ones(2, 3), "b": torch.arange(3)}
    data = save(tensors, metadata={"x": "y"})
    back = load(data)
    for k in tensors:
        same(back[k], tensors[k])


def test_safetensors_error_contract(tmp_path):
    """The same exception types as safetensors.torch for what neither can save."""
    base = torch.zeros(4, 4)
    cases = {
        "not a dict": ([torch.zeros(1)], ValueError),
        "not a tensor": ({"a": np.zeros(1)}, ValueError),
        "sparse": ({"a": torch.zeros(3, 3).to_sparse()}, ValueError),
        "shared": ({"a": base, "b": base}, RuntimeError),
        "non contiguous": ({"a": torch.zeros(4, 4).t()}, ValueError),
    }
    for what, (tensors, exc) in cases.items():
        with pytest.raises(exc):
            st.save_file(tensors, str(tmp_path / "ref.safetensors"))
        with pytest.raises(exc):
            save_file(tensors, tmp_path / "ours.zt")
        assert not (tmp_path / "ours.zt").exists(), what


def test_same_results_as_safetensors(tmp_path):
    tensors = {k: v for k, v in all_dtypes().items() if k not in ("c128", "uint16", "uint32", "uint64")}
    st.save_file(tensors, str(tmp_path / "ref.safetensors"), metadata={"k": "v"})
    save_file(tensors, tmp_path / "ours.zt", metadata={"k": "v"})
    ref = st.load_file(str(tmp_path / "ref.safetensors"))
    ours = load_file(tmp_path / "ours.zt")
    ours_from_st = load_file(tmp_path / "ref.safetensors")
    assert sorted(ref) == sorted(ours) == sorted(ours_from_st)
    for k in ref:
        same(ours[k], ref[k])
        same(ours_from_st[k], ref[k])
    # And back: our .zt converted to safetensors is read by safetensors itself.
    ztensor.convert_to_safetensors(tmp_path / "ours.zt", tmp_path / "back.safetensors")
    back = st.load_file(str(tmp_path / "back.safetensors"))
    for k in ref:
        same(back[k], ref[k])


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight
        self.norm = torch.nn.LayerNorm(4)


def test_save_model_stores_tied_weights_once(tmp_path):
    model = Tied()
    save_model(model, tmp_path / "m.zt", metadata={"user": "data"})
    r = ztensor.Reader(tmp_path / "m.zt")
    assert "embed.weight" in r and "head.weight" not in r
    assert r.metadata() == {"user": "data", "head.weight": "embed.weight"}
    fresh = Tied()
    missing, unexpected = load_model(fresh, tmp_path / "m.zt")
    assert missing == [] and unexpected == []
    assert torch.equal(fresh.head.weight, model.embed.weight)
    assert fresh.head.weight.data_ptr() == fresh.embed.weight.data_ptr()
    # safetensors makes the same choice.
    st.save_model(model, str(tmp_path / "m.safetensors"))
    assert sorted(st.load_file(str(tmp_path / "m.safetensors"))) == sorted(r.keys())


def test_load_model_strict(tmp_path):
    save_model(torch.nn.Linear(3, 2), tmp_path / "lin.zt")
    other = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(RuntimeError, match="Missing key"):
        load_model(other, tmp_path / "lin.zt")
    missing, unexpected = load_model(other, tmp_path / "lin.zt", strict=False)
    assert missing == ["0.bias", "0.weight"] and sorted(unexpected) == ["bias", "weight"]
    lin = torch.nn.Linear(3, 2)
    assert load_model(lin, tmp_path / "lin.zt", copy=True) == ([], [])


def test_writer_write_torch_moves_and_packs(tmp_path):
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()  # non-contiguous
    with ztensor.Writer(tmp_path / "w.zt") as w:
        w.write_torch("t", t, compress=True, checksum="crc32c")
        w.write_torch("g", torch.ones(2, requires_grad=True))
    out = ztensor.Reader(tmp_path / "w.zt")
    assert torch.equal(out.read_torch("t"), t)
    assert out.read_torch("g").requires_grad is False


def test_read_into_torch(tmp_path):
    x = torch.randn(16, 8).bfloat16()
    save_file({"x": x, "y": torch.arange(5)}, tmp_path / "a.zt")
    r = ztensor.Reader(tmp_path / "a.zt")
    dst = torch.empty(16, 8, dtype=torch.bfloat16)
    r.read_into("x", dst)
    same(dst, x)
    arena = torch.zeros(16 * 8 * 2 + 5 * 8, dtype=torch.uint8)
    views = {
        "x": arena[: 256].view(torch.bfloat16).reshape(16, 8),
        "y": arena[256:].view(torch.int64),
    }
    r.read_into(views)
    same(views["x"], x)
    assert views["y"].tolist() == [0, 1, 2, 3, 4]
    cast = torch.empty(16, 8, dtype=torch.float32)  # another dtype: through copy_
    r.read_into("x", cast)
    assert torch.equal(cast, x.float())


@pytest.mark.skipif(not has_cuda(), reason="no CUDA device")
def test_cuda_device(tmp_path):
    tensors = {"a": torch.randn(64, 64), "b": torch.randn(8).bfloat16()}
    save_file(tensors, tmp_path / "g.zt")
    for device in ("cuda:0", 0, "cuda"):
        out = load_file(tmp_path / "g.zt", device=device)
        for k in tensors:
            assert out[k].device.type == "cuda"
            same(out[k].cpu(), tensors[k])
    r = ztensor.Reader(tmp_path / "g.zt")
    dst = torch.empty(64, 64, device="cuda")
    r.read_into("a", dst)
    assert torch.equal(dst.cpu(), tensors["a"])
    save_file({k: v.cuda() for k, v in tensors.items()}, tmp_path / "from_gpu.zt")
    same(load_file(tmp_path / "from_gpu.zt")["a"], tensors["a"])


def test_cuda_device_string_is_passed_to_torch(tmp_path):
    save_file({"a": torch.ones(2)}, tmp_path / "d.zt")
    if has_cuda():
        pytest.skip("covered by test_cuda_device")
    with pytest.raises((RuntimeError, AssertionError)):
        load_file(tmp_path / "d.zt", device="cuda:0")
