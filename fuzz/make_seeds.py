#!/usr/bin/env python3
"""Extracts the CBOR manifests of the committed .zt fixtures into fuzz/seeds/zt_manifest/.

The zt_reader target is seeded with the fixture files themselves; the manifest target needs
the manifests alone. Run from the repository root: python3 fuzz/make_seeds.py
"""
import pathlib
import struct

root = pathlib.Path(__file__).resolve().parent.parent
out = root / "fuzz" / "seeds" / "zt_manifest"
out.mkdir(parents=True, exist_ok=True)
for path in sorted((root / "tests" / "fixtures" / "zt1").glob("*.zt")):
    data = path.read_bytes()
    if data[:8] == b"ZTEN1000" and data[-8:] == b"ZTEN1000":
        (size,) = struct.unpack("<Q", data[-16:-8])
        manifest = data[len(data) - 16 - size : len(data) - 16]
    elif data[:8] == b"ZTEN0001":
        (size,) = struct.unpack("<Q", data[-8:])
        manifest = data[len(data) - 8 - size : len(data) - 8]
    else:
        continue
    (out / (path.stem + ".cbor")).write_bytes(manifest)
