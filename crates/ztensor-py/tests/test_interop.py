"""Interoperability with zTensor 1.2.3 (run in a subprocess of its own interpreter, since both
packages are named ``ztensor``), safetensors and torch."""

import hashlib
import json

import ml_dtypes
import numpy as np
import pytest

import ztensor
from ztensor.numpy import load_file, save_file

# Dumps every tensor of a file as zTensor 1.2.3 reads it: components' dtype, size, sha256
# (component shapes differ on purpose: 1.2.3 returns scalars with shape (1,)).
DUMP_123 = r"""
import hashlib, json, sys
import numpy as np
import ztensor
r = ztensor.Reader(sys.argv[1])
out = {}
for name in r.keys():
    t = r.read(name)
    out[name] = {
        "format": t.format,
        "shape": list(t.shape),
        "components": {
            k: [str(v.dtype), int(v.size), hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()]
            for k, v in t.components.items()
        },
    }
print(json.dumps(out))
"""

WRITE_123 = r"""
import sys
import numpy as np
import ml_dtypes
import ztensor
from ztensor.numpy import save_file
d = sys.argv[1]
rng = np.random.default_rng(5)
arrays = {
    "f32": rng.standard_normal((3, 4)).astype(np.float32),
    "f64": rng.standard_normal(5),
    "f16": rng.standard_normal(6).astype(np.float16),
    "bf16": rng.standard_normal(6).astype(ml_dtypes.bfloat16),
    "i64": np.arange(-3, 4, dtype=np.int64),
    "u8": np.arange(9, dtype=np.uint8).reshape(3, 3),
    "bool": np.array([True, False, True]),
    "u32": np.arange(4, dtype=np.uint32),
}
save_file(arrays, d + "/plain.zt")
save_file(arrays, d + "/zstd.zt", compression=7)
w = ztensor.Writer(d + "/writer.zt")
w.write_numpy("ck", arrays["f32"], checksum="crc32c")
w.write_numpy("sha", arrays["i64"], compress=True, checksum="sha256")
w.write("csr", ztensor.Tensor(
    {"values": np.array([1.0, 2.0], np.float32), "indices": np.array([1, 0], np.uint64),
     "indptr": np.array([0, 1, 2], np.uint64)}, shape=[2, 2], dtype="float32", format="sparse_csr"))
w.finish()
"""


def digest(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def our_dump(path):
    r = ztensor.Reader(path)
    out = {}
    for name in r.keys():
        t = r.read(name)
        out[name] = {
            "format": t.format,
            "shape": t.shape,
            "components": {
                k: [str(v.dtype), int(v.size), digest(v)] for k, v in t.components.items()
            },
        }
    return out


def sample_tensors(rng):
    return {
        "f32": rng.standard_normal((4, 3)).astype(np.float32),
        "f64": rng.standard_normal(2),
        "f16": rng.standard_normal((2, 2)).astype(np.float16),
        "bf16": rng.standard_normal(5).astype(ml_dtypes.bfloat16),
        "i64": np.arange(-2, 3, dtype=np.int64),
        "i32": np.arange(3, dtype=np.int32),
        "i16": np.arange(3, dtype=np.int16),
        "i8": np.arange(-1, 2, dtype=np.int8),
        "u64": np.arange(3, dtype=np.uint64),
        "u32": np.arange(3, dtype=np.uint32),
        "u16": np.arange(3, dtype=np.uint16),
        "u8": np.arange(3, dtype=np.uint8),
        "bool": np.array([True, False]),
        "scalar": np.array(7, dtype=np.int32),
        "empty": np.zeros((0,), np.float32),
    }


@pytest.mark.parametrize("compression", [False, True, 19])
def test_zt123_reads_our_files(tmp_path, rng, zt123, compression):
    tensors = sample_tensors(rng)
    path = tmp_path / "ours.zt"
    save_file(tensors, path, metadata={"k": "v"}, compression=compression)
    with ztensor.Writer.append(path) as w:
        w.write_numpy("ck", tensors["f32"], checksum="crc32c")
        w.write_numpy("sha", tensors["i64"], checksum="sha256", compress=compression)
        w.write(
            "coo",
            ztensor.Tensor(
                {"values": np.array([5, 6], np.int32), "coords": np.array([0, 1, 1, 2], np.uint64)},
                shape=[2, 3],
                format="sparse_coo",
            ),
        )
    theirs = json.loads(zt123(DUMP_123, path))
    assert theirs == our_dump(path)


def test_we_read_zt123_files(tmp_path, zt123):
    zt123(WRITE_123, tmp_path)
    for name in ("plain.zt", "zstd.zt", "writer.zt"):
        assert our_dump(tmp_path / name) == json.loads(zt123(DUMP_123, tmp_path / name)), name
        assert ztensor.Reader(tmp_path / name).verify() >= 0
    a = load_file(tmp_path / "plain.zt")
    b = load_file(tmp_path / "zstd.zt", copy=True)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes() and a[k].dtype == b[k].dtype


def test_zt123_refuses_codec_files(tmp_path, zt123):
    save_file({"w": np.ones(1000, np.float32)}, tmp_path / "codec.zt", compression="codec")
    with pytest.raises(AssertionError, match="ztc1|encoding|nsupported"):
        zt123(DUMP_123, tmp_path / "codec.zt")


def test_edits_stay_readable_by_zt123(tmp_path, rng, zt123):
    tensors = sample_tensors(rng)
    save_file(tensors, tmp_path / "src.zt", compression=True)
    ztensor.remove_tensors(tmp_path / "src.zt", tmp_path / "removed.zt", ["f64", "bool"])
    save_file(tensors, tmp_path / "rep.zt")
    ztensor.replace_tensor(tmp_path / "rep.zt", "f32", np.ones((4, 3), np.float32))
    for f in ("removed.zt", "rep.zt"):
        assert json.loads(zt123(DUMP_123, tmp_path / f)) == our_dump(tmp_path / f)


def test_safetensors_files_both_ways(tmp_path, rng):
    from safetensors import safe_open
    from safetensors.numpy import load_file as st_load
    from safetensors.numpy import save_file as st_save

    tensors = sample_tensors(rng)
    st_save(tensors, str(tmp_path / "ref.safetensors"), metadata={"a": "b"})
    ref = st_load(str(tmp_path / "ref.safetensors"))
    ours = load_file(tmp_path / "ref.safetensors")
    assert sorted(ours) == sorted(ref)
    for k in ref:
        assert ours[k].dtype == ref[k].dtype and ours[k].shape == ref[k].shape
        assert ours[k].tobytes() == ref[k].tobytes()
    r = ztensor.Reader(tmp_path / "ref.safetensors")
    assert r.format == "safetensors" and r.metadata() == {"a": "b"}
    # Ours -> .zt -> safetensors, read by safetensors itself, metadata included.
    save_file(tensors, tmp_path / "ours.zt", metadata={"a": "b"})
    ztensor.convert_to_safetensors(tmp_path / "ours.zt", tmp_path / "out.safetensors")
    back = st_load(str(tmp_path / "out.safetensors"))
    for k in ref:
        assert back[k].tobytes() == ref[k].tobytes() and back[k].dtype == ref[k].dtype
    with safe_open(str(tmp_path / "out.safetensors"), "np") as f:
        assert f.metadata() == {"a": "b"}


def test_torch_pickles(tmp_path):
    torch = pytest.importorskip("torch")
    state = {
        "w": torch.randn(3, 4),
        "b": torch.arange(4).to(torch.bfloat16),
        "i": torch.arange(6, dtype=torch.int32).reshape(2, 3)[:, 1:],  # a view
    }
    torch.save(state, tmp_path / "m.pt")
    ref = torch.load(tmp_path / "m.pt", weights_only=True)
    from ztensor.torch import load_file as zt_load

    ours = zt_load(tmp_path / "m.pt")
    assert ztensor.Reader(tmp_path / "m.pt").format == "pickle"
    for k in ref:
        assert ours[k].dtype == ref[k].dtype and torch.equal(ours[k], ref[k].contiguous())
