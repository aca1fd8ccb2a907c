//! Criterion micro-benchmarks of the `.zt` manifest, the part of a file that opening reads:
//! parsing the manifest of 1000 and 100000 tensors, and `ZtReader::open` of a 100000-tensor
//! file (warm page cache: the manifest parse, the layout checks and the map).
//!
//! `cargo bench -p zt-format --bench manifest` (`-- --quick` for a short run).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use zt_core::DType;
use zt_format::manifest::parse_manifest;
use zt_format::{ComponentOptions, Writer, ZtReader};

/// A file of `count` f32 tensors of 4 elements, named like checkpoint weights.
fn write_file(dir: &Path, count: usize) -> PathBuf {
    let path = dir.join(format!("{count}.zt"));
    let mut writer = Writer::create(&path).expect("creating the file");
    for i in 0..count {
        let name = format!("model.layers.{}.block.{}.weight", i / 100, i % 100);
        let bytes: Vec<u8> = [i as f32, 1.0, 2.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        writer
            .add_dense(&name, [4], DType::F32, &bytes, ComponentOptions::raw())
            .expect("adding a tensor");
    }
    writer.finish().expect("finishing the file");
    path
}

/// The manifest's bytes, as the reader finds them in the file.
fn manifest_bytes(path: &Path) -> Vec<u8> {
    let range = ZtReader::open(path)
        .expect("opening the file")
        .layout()
        .manifest;
    let file = std::fs::read(path).expect("reading the file");
    file[range.offset as usize..(range.offset + range.length) as usize].to_vec()
}

fn manifest(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut group = c.benchmark_group("manifest");
    group.sample_size(10);
    for count in [1_000usize, 100_000] {
        let path = write_file(dir.path(), count);
        let bytes = manifest_bytes(&path);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::new("parse", count), &bytes, |b, bytes| {
            b.iter(|| parse_manifest(black_box(bytes)).expect("parsing"));
        });
        if count == 100_000 {
            group.bench_with_input(BenchmarkId::new("open", count), &path, |b, path| {
                b.iter(|| ZtReader::open(black_box(path)).expect("opening"));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, manifest);
criterion_main!(benches);
