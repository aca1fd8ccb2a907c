"""Every committed fixture (written by the reference libraries, tests/fixtures/*/) loads through
the Python API with the bytes its expected.json records, and equal to what the reference
library itself loads where that library is installed here (safetensors, torch, numpy)."""

import hashlib
import json

import numpy as np
import pytest

import ztensor

from conftest import FIXTURES

FORMATS = ["zt1", "zt2", "safetensors", "pickle", "npz", "gguf", "onnx"]


def cases():
    for fmt in FORMATS:
        expected = json.loads((FIXTURES / fmt / "expected.json").read_text())
        files = expected.get("files", expected)
        for name, entry in files.items():
            if isinstance(entry, dict) and (FIXTURES / fmt / name).exists():
                yield pytest.param(fmt, name, entry, id=f"{fmt}/{name}")


def entries(entry):
    tensors = entry.get("tensors", {})
    if isinstance(tensors, list):
        return [(t["name"], t) for t in tensors]
    return list(tensors.items())


def sha(buf):
    return hashlib.sha256(memoryview(buf)).hexdigest()


@pytest.mark.parametrize("fmt,name,entry", list(cases()))
def test_fixture(fmt, name, entry):
    path = FIXTURES / fmt / name
    if "error" in entry:
        with pytest.raises(ztensor.ZTensorError) as e:
            r = ztensor.Reader(path)
            for n in r.keys():
                r.read(n)
        assert e.value.path is not None
        return
    r = ztensor.Reader(path)
    expected = entries(entry)
    if fmt == "zt1":
        assert sorted(r.keys()) == sorted(n for n, _ in expected)
    checked = 0
    for tname, t in expected:
        meta = r.metadata(tname)
        if "shape" in t:
            assert meta.shape == t["shape"], tname
        parts = t.get("components") or t.get("parts")
        if parts:  # every component, decoded
            for role, c in parts.items():
                want = c.get("decoded_sha256") or c.get("sha256")
                for copy in (False, True):
                    assert sha(r._inner.component(tname, role, copy)) == want, (tname, role)
            tensor = r.read(tname)
            assert set(tensor.components) == set(parts) and tensor.format == meta.format
            checked += 1
            continue
        if "sha256" not in t:
            continue
        for copy in (False, True):
            buf = r._inner.component(tname, "data", copy)
            assert sha(buf) == t["sha256"], tname
        if meta.format != "dense":
            assert r.read(tname).format == meta.format
            checked += 1
            continue
        try:
            arr = r.read_numpy(tname)
        except ztensor.UnsupportedError:
            checked += 1
            continue  # a logical type NumPy has no dtype for (FP6, INT4...): bytes checked above
        assert arr.size == int(np.prod(t.get("shape", arr.shape))) or t.get("type"), tname
        checked += 1
    assert checked or not expected


def test_hdf5_needs_its_feature():
    files = sorted((FIXTURES / "hdf5").glob("*.h5"))
    assert files
    try:
        r = ztensor.Reader(files[0])
    except ztensor.UnsupportedError as e:
        assert "hdf5" in str(e)
    else:  # a build with the hdf5 feature
        assert r.format == "hdf5"


def test_safetensors_fixtures_equal_safetensors_own_loads():
    st = pytest.importorskip("safetensors.numpy")
    for path in sorted((FIXTURES / "safetensors").glob("*.safetensors")):
        try:
            ref = st.load_file(str(path))
        except Exception:
            continue  # dtypes safetensors' NumPy API does not map (its torch API covers them)
        from ztensor.numpy import load_file

        ours = load_file(path)
        assert sorted(ours) == sorted(ref), path.name
        for k in ref:
            assert ours[k].dtype == ref[k].dtype and ours[k].shape == ref[k].shape, (path.name, k)
            assert ours[k].tobytes() == ref[k].tobytes(), (path.name, k)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_torch_fixtures_equal_torch_own_loads():
    torch = pytest.importorskip("torch")
    from ztensor.torch import load_file

    compared = 0
    for path in sorted((FIXTURES / "safetensors").glob("dtypes_torch.safetensors")) + sorted(
        (FIXTURES / "pickle").glob("*.pt")
    ):
        try:
            if path.suffix == ".pt":
                ref = torch.load(path, weights_only=True)
            else:
                from safetensors.torch import load_file as st_load

                ref = st_load(str(path))
        except Exception:
            continue
        if not isinstance(ref, dict) or not all(isinstance(v, torch.Tensor) for v in ref.values()):
            continue  # nested checkpoints: names are flattened differently
        try:
            ours = load_file(path)
        except ztensor.UnsupportedError:
            continue
        for k, v in ref.items():
            assert ours[k].dtype == v.dtype and ours[k].shape == v.shape, (path.name, k)
            a = ours[k].resolve_conj().contiguous().view(-1)
            b = v.resolve_conj().contiguous().view(-1)
            assert torch.equal(a.view(torch.uint8), b.view(torch.uint8)), (path.name, k)
            compared += 1
    assert compared >= 30, compared


def test_npz_fixtures_equal_numpys_own_loads():
    from ztensor.numpy import load_file

    compared = 0
    for path in sorted((FIXTURES / "npz").glob("*.np[yz]")):
        try:
            ref = np.load(path, allow_pickle=False)
            ref = {"arr_0": ref} if isinstance(ref, np.ndarray) else {k: ref[k] for k in ref.files}
        except ValueError:
            continue  # object arrays
        try:
            ours = load_file(path)
        except ztensor.ZTensorError:
            continue
        for k, v in ref.items():
            key = k if k in ours else next(iter(ours)) if len(ours) == 1 and len(ref) == 1 else k
            if key not in ours:
                continue  # skipped entries (object dtype) are not tensors
            got = ours[key]
            if v.dtype.kind in "OV" or v.dtype.name not in (got.dtype.name,):
                v = v.astype(got.dtype) if v.dtype.kind not in "OV" else v
            assert got.shape == v.shape, (path.name, k)
            assert np.array_equal(got, v, equal_nan=v.dtype.kind in "fc"), (path.name, k)
            compared += 1
    assert compared >= 20, compared
