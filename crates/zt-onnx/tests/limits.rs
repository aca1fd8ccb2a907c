//! Resource limits (spec/limits.md): ONNX models whose lengths and shapes lie give a clear
//! error, and the legal inputs that cost the most memory per byte (typed fields of one-byte
//! varints, 64-D sparse coordinates, many tiny initializers) stay within the documented
//! multiple. `hostile.rs` holds the wider corpus.
//!
//! One test in this binary, so the process-wide allocation counter sees only its own work.

use prost::Message;
use zt_core::{Error, TensorReader};
use zt_onnx::proto::tensor_proto::DataLocation;
use zt_onnx::proto::tensor_proto::DataType;
use zt_onnx::proto::{
    GraphProto, ModelProto, SparseTensorProto, StringStringEntryProto, TensorProto,
};
use zt_onnx::{MAX_EXTERNAL_FILES, MAX_METADATA_ENTRIES, MAX_RANK, OnnxReader};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

/// Worst case documented in spec/limits.md: ~2.8 KiB of bookkeeping (`TensorInfo` and its maps)
/// per initializer, which can be as small as ~14 bytes (~200x).
const MULTIPLE: usize = 256;
/// Every case but the many tiny initializers: sparse COO coordinates take 8 bytes per dimension
/// per non-zero (64 dimensions: 512 bytes for 9 bytes of index and value, ~57x); typed fields
/// of one-byte varints 16x.
const DATA_MULTIPLE: usize = 64;
const SLACK: usize = 1 << 20;

fn tensor(name: &str, data_type: DataType, dims: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(data_type as i32),
        dims: dims.to_vec(),
        ..Default::default()
    }
}

fn raw(name: &str, data_type: DataType, dims: &[i64], bytes: &[u8]) -> TensorProto {
    TensorProto {
        raw_data: Some(bytes.to_vec().into()),
        ..tensor(name, data_type, dims)
    }
}

fn model_with(graph: GraphProto) -> Vec<u8> {
    ModelProto {
        ir_version: Some(10),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn model(initializers: Vec<TensorProto>) -> Vec<u8> {
    model_with(GraphProto {
        initializer: initializers,
        ..Default::default()
    })
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn open_and_read(path: &std::path::Path, read: bool) -> Result<usize, Error> {
    let reader = OnnxReader::open(path)?;
    if read {
        for name in reader.names() {
            for role in reader.info(name)?.components.keys() {
                reader.component(name, role)?;
            }
        }
    }
    Ok(reader.len())
}

#[test]
fn lying_lengths_are_refused_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.onnx");
    // Opening within `multiple` times the file; opening and reading every component within
    // twice that (reading a converted component, typed fields or coordinates, hands out a copy).
    let run_within = |name: &str, bytes: &[u8], multiple: usize| -> Result<usize, Error> {
        std::fs::write(&path, bytes).unwrap();
        let measure = |read| zt_testkit::CountingAllocator::measure(|| open_and_read(&path, read));
        let (opened, peak) = measure(false);
        let ratio = peak as f64 / bytes.len() as f64;
        println!(
            "{name}: {} bytes, peak {peak} ({ratio:.1}x): {opened:?}",
            bytes.len()
        );
        let bound = multiple * bytes.len() + SLACK;
        assert!(
            peak <= bound,
            "{name}: opening allocated {peak} bytes (bound {bound})"
        );
        let (read, peak) = measure(true);
        let bound = 2 * multiple * bytes.len() + SLACK;
        assert!(
            peak <= bound,
            "{name}: reading allocated {peak} bytes (bound {bound})"
        );
        assert_eq!(opened.is_ok(), read.is_ok(), "{name}");
        read
    };
    let run = |name: &str, bytes: &[u8]| run_within(name, bytes, DATA_MULTIPLE);

    // A raw tensor of 2^60 elements over 16 bytes.
    let err = run(
        "2^60 elements over 16 bytes",
        &model(vec![raw("t", DataType::Uint8, &[1 << 60], &[0; 16])]),
    )
    .unwrap_err();
    assert!(matches!(err.kind(), Error::LengthMismatch { .. }), "{err}");

    // raw_data whose length prefix claims 2^40 bytes.
    let mut t = vec![0x08, 4, 0x10, 1, 0x4a];
    varint(&mut t, 1 << 40);
    t.extend([0; 16]);
    let mut graph = vec![0x2a];
    varint(&mut graph, t.len() as u64);
    graph.extend(t);
    let mut file = vec![0x08, 10, 0x3a];
    varint(&mut file, graph.len() as u64);
    file.extend(graph);
    let err = run("raw_data length of 2^40", &file).unwrap_err();
    assert!(matches!(err.kind(), Error::Truncated { .. }), "{err}");

    // int64_data of a million one-byte varints: 8 bytes of output each.
    let n = 1 << 20;
    let longs = model(vec![TensorProto {
        int64_data: vec![1; n],
        ..tensor("t", DataType::Int64, &[n as i64])
    }]);
    assert_eq!(run("a million one-byte int64 varints", &longs).unwrap(), 1);

    // A sparse tensor of 64 dimensions with 100,000 linear indices (duplicates are legal).
    let nnz = 100_000;
    let sparse = model_with(GraphProto {
        sparse_initializer: vec![SparseTensorProto {
            values: Some(raw("s", DataType::Uint8, &[nnz], &vec![7; nnz as usize])),
            indices: Some(raw("", DataType::Int64, &[nnz], &vec![0; 8 * nnz as usize])),
            dims: vec![1; MAX_RANK],
        }],
        ..Default::default()
    });
    assert_eq!(
        run("64-D sparse tensor, 100,000 values", &sparse).unwrap(),
        1
    );

    // 20,000 tiny initializers: the most bookkeeping per model byte.
    let many = (0..20_000)
        .map(|i| raw(&format!("{i}"), DataType::Uint8, &[1], &[7]))
        .collect();
    assert_eq!(
        run_within("20,000 one-byte initializers", &model(many), MULTIPLE).unwrap(),
        20_000
    );

    // More metadata entries than MAX_METADATA_ENTRIES (2 bytes each on disk).
    let props = ModelProto {
        ir_version: Some(10),
        metadata_props: vec![StringStringEntryProto::default(); MAX_METADATA_ENTRIES + 1],
        ..Default::default()
    }
    .encode_to_vec();
    let err = run("65,537 metadata entries", &props).unwrap_err();
    assert!(
        matches!(err.kind(), Error::Unsupported(m) if m.contains("MAX_METADATA_ENTRIES")),
        "{err}"
    );

    // Initializers in more external files than MAX_EXTERNAL_FILES (each stays mapped).
    let files = MAX_EXTERNAL_FILES + 1;
    let externals = (0..files)
        .map(|i| {
            std::fs::write(dir.path().join(format!("w{i}.bin")), [0u8; 4]).unwrap();
            let entry = |k: &str, v: String| StringStringEntryProto {
                key: Some(k.into()),
                value: Some(v),
            };
            TensorProto {
                data_location: Some(DataLocation::External as i32),
                external_data: vec![entry("location", format!("w{i}.bin"))],
                ..tensor(&format!("{i}"), DataType::Float, &[1])
            }
        })
        .collect();
    let err = run_within("1,025 external files", &model(externals), MULTIPLE).unwrap_err();
    assert!(
        matches!(err.kind(), Error::Unsupported(m) if m.contains("MAX_EXTERNAL_FILES")),
        "{err}"
    );
}
