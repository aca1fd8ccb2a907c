#!/usr/bin/env python3
"""Draws the chart of `cargo xtask bench` from its JSON report (matplotlib, bench venv).

    python benchmark/plot.py benchmark/results/latest.json benchmark/results/latest.png

Up to four panels, one per section that was measured: cross-format cold reads (GB/s per
source format), cold reads and writes of the Large / Mixed / Small workloads (GB/s per
implementation), and compressed size per workload. Each bar is the best of an implementation's
modes (zero-copy or copying).
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "raw": "raw I/O",
    "ours-rust": "ztensor (Rust)",
    "ours-python": "ztensor (Python)",
    "upstream": "zTensor 2.x",
}
COLORS = {
    "raw": "#999999",
    "ours-rust": "#1f77b4",
    "ours-python": "#6baed6",
    "upstream": "#ff7f0e",
    "reference": "#2ca02c",
    "safetensors": "#9467bd",
    "pt": "#8c564b",
    "npz": "#e377c2",
    "gguf": "#d62728",
    "onnx": "#bcbd22",
    "hdf5": "#17becf",
}
# Series that are not implementations of ours: labelled by what they are.
OTHER_LABELS = {"reference": "reference library", "pt": "pickle (torch)", "hdf5": "hdf5 (h5py)"}


def best(measurements, **want):
    """The best GB/s among the measurements matching `want`, or None."""
    values = [
        m["gb_per_s"]
        for m in measurements
        if m.get("gb_per_s") is not None and all(m.get(k) == v for k, v in want.items())
    ]
    return max(values) if values else None


def bars(ax, groups, series, value, title, ylabel="GB/s"):
    """Grouped bars: one group per entry of `groups`, one bar per series with any value."""
    series = [s for s in series if any(value(g, s) is not None for g in groups)]
    if not series:
        return False
    width = 0.8 / len(series)
    for i, s in enumerate(series):
        heights = [value(g, s) or 0 for g in groups]
        x = [j + (i - (len(series) - 1) / 2) * width for j in range(len(groups))]
        label = LABELS.get(s, OTHER_LABELS.get(s, s))
        ax.bar(x, heights, width, label=label, color=COLORS.get(s))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return True


def main() -> int:
    report = json.load(open(sys.argv[1]))
    ms = report["measurements"]
    panels = []

    def section(name):
        return [m for m in ms if m["section"] == name]

    formats = section("formats")
    if formats:
        order = []
        for m in formats:
            if m["format"] not in order:
                order.append(m["format"])

        def fmt_value(fmt, s):
            if s == "reference":
                return best([m for m in formats if m["implementation"] not in LABELS], format=fmt)
            return best(formats, format=fmt, implementation=s)

        panels.append(
            lambda ax: bars(
                ax,
                order,
                ["raw", "ours-rust", "ours-python", "upstream", "reference"],
                fmt_value,
                "Cross-format cold read (Llama 3.2 1B shapes)",
            )
        )

    for name, title, extra in [
        ("read", "Cold read, 3 workloads", {"cold": True}),
        ("write", "Write (fsync), 3 workloads", {}),
    ]:
        part = [m for m in section(name) if all(m[k] == v for k, v in extra.items())]
        if not part:
            continue
        impls = []
        for m in part:
            key = m["implementation"] if m["format"] in ("zt", "raw") else m["format"]
            if m["implementation"] == "ours-rust" and m["format"] == "safetensors":
                continue
            if key not in impls:
                impls.append(key)

        def lms_value(workload, key, part=part):
            if key in LABELS:
                return best(part, workload=workload, implementation=key, format="zt") or best(
                    part, workload=workload, implementation=key, format="raw"
                )
            return best(
                [m for m in part if m["implementation"] not in LABELS],
                workload=workload,
                format=key,
            )

        panels.append(
            lambda ax, impls=impls, lms_value=lms_value, title=title: bars(
                ax, ["large", "mixed", "small"], impls, lms_value, title
            )
        )

    compression = [m for m in section("compression") if m["op"] == "write"]
    if compression:
        workloads = []
        for m in compression:
            if m["workload"] not in workloads:
                workloads.append(m["workload"])

        def size(workload, s):
            impl, comp = s.split(":")
            for m in compression:
                if (
                    m["workload"] == workload
                    and m["implementation"] == impl
                    and m["compression"] == comp
                    and m.get("file_bytes")
                ):
                    return 100.0 * m["file_bytes"] / m["tensor_bytes"]
            return None

        LABELS.update({"ours-rust:zstd-3": "ours zstd-3", "ours-rust:ztc": "ours ztc",
                       "upstream:zstd-3": "zTensor 2.x zstd"})
        COLORS.update({"ours-rust:zstd-3": "#1f77b4", "ours-rust:ztc": "#2ca02c",
                       "upstream:zstd-3": "#ff7f0e"})
        panels.append(
            lambda ax: bars(
                ax,
                workloads,
                ["ours-rust:zstd-3", "ours-rust:ztc", "upstream:zstd-3"],
                size,
                "Compressed size (% of tensor bytes, lower is better)",
                ylabel="%",
            )
        )

    if not panels:
        print("nothing to plot", file=sys.stderr)
        return 1
    cols = 2 if len(panels) > 1 else 1
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 4 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        panel(ax)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    machine = report["machine"]
    fig.suptitle(
        f"cargo xtask bench, {report['date']}: {machine['nproc']} CPUs ({machine['cpu']})"
        + (", --quick" if report["quick"] else ""),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=72)
    return 0


if __name__ == "__main__":
    sys.exit(main())
