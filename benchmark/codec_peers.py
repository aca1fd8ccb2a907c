#!/usr/bin/env python3
"""Measures the peer codecs (z4ai, ZipNN) on one workload file for `cargo xtask bench-codec`.

Reads the raw little-endian workload, compresses and decompresses it with each codec that is
installed, checks the round trip byte for byte, and prints one JSON list of results:
{"codec", "effort", "ratio", "compress_mbps", "decompress_mbps", "lossless"} (MB = 1e6 bytes,
best of --runs timed runs). A codec that is missing or fails is reported with an "error".

    python benchmark/codec_peers.py --file W.bin --dtype bf16 --threads 2 [--reference R.bin]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings


def best(fn, runs):
    t_best, out = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def result(codec, effort, n, blob_len, tc, td, ok):
    return {
        "codec": codec,
        "effort": effort,
        "ratio": n / blob_len,
        "compress_mbps": n / 1e6 / tc,
        "decompress_mbps": n / 1e6 / td,
        "lossless": ok,
    }


def run_z4ai(data, ref, dtype, threads, runs, efforts):
    import z4ai

    out = []
    for effort in efforts:
        # z4ai's max tier is very slow to encode: one run is enough for its ratio.
        r = 1 if effort == "max" else runs
        # z4ai takes None for its default tier (any other string selects its max path).
        tier = None if effort == "default" else effort
        try:
            if ref is None:
                tc, blob = best(
                    lambda: z4ai.compress(data, dtype=dtype, effort=tier, threads=threads), r
                )
                td, back = best(lambda: z4ai.decompress(blob), r)
            else:
                if effort != "default":
                    continue  # compress_delta has no effort tiers
                tc, blob = best(
                    lambda: z4ai.compress_delta(data, ref, dtype=dtype, threads=threads), r
                )
                td, back = best(lambda: z4ai.decompress_delta(blob, reference=ref), r)
            out.append(result("z4ai", effort, len(data), len(blob), tc, td, bytes(back) == data))
        except Exception as e:  # noqa: BLE001
            out.append({"codec": "z4ai", "effort": effort, "error": repr(e)})
    return out


def run_zipnn(data, dtype, threads, runs):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from zipnn import ZipNN
        names = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
        z = ZipNN(bytearray_dtype=names[dtype], threads=threads)
        # ZipNN may rearrange its input in place: each run gets its own copy, made untimed.
        bufs = iter([bytearray(data) for _ in range(runs)])
        tc, blob = best(lambda: z.compress(next(bufs)), runs)
        td, back = best(lambda: z.decompress(blob), runs)
        return [result("zipnn", "default", len(data), len(blob), tc, td, bytes(back) == data)]
    except Exception as e:  # noqa: BLE001
        return [{"codec": "zipnn", "effort": "default", "error": repr(e)}]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--file", required=True)
    ap.add_argument("--dtype", required=True, choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reference", help="delta workload: the previous checkpoint")
    ap.add_argument("--z4ai-efforts", default="fast,default,max")
    args = ap.parse_args()

    data = open(args.file, "rb").read()
    ref = open(args.reference, "rb").read() if args.reference else None
    efforts = [e for e in args.z4ai_efforts.split(",") if e]
    res = run_z4ai(data, ref, args.dtype, args.threads, args.runs, efforts)
    # ZipNN has no delta mode: it compresses the checkpoint itself.
    res += run_zipnn(data, args.dtype, args.threads, args.runs)
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    main()
