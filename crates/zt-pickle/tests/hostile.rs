//! Hostile input: code-execution attempts, pickle and zip bombs, lying lengths and offsets,
//! truncations. Every case must give a clear error, never a panic or a hang, never run anything,
//! and never allocate far beyond the file's size.
//!
//! This test binary has one test so that the allocation counter below sees only its own work.

use std::io::Cursor;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

mod common;
use common::{P, checkpoint, legacy, state_dict, tensor, zip_file};
use zt_core::{Error, TensorReader};
use zt_pickle::pickle::{Object, unpickle, unpickle_at};
use zt_pickle::{Limits, PickleReader, flatten, flatten_with};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

const F32X6: &[u8] = &[0u8; 24];

fn valid() -> Vec<u8> {
    checkpoint(
        &state_dict("FloatStorage", 6, 0, &[2, 3], &[3, 1]),
        &[("data/0", F32X6)],
    )
}

fn forbidden(name: &'static str) -> impl Fn(&Error) -> bool {
    move |e| matches!(e.kind(), Error::ForbiddenGlobal { global } if global == name)
}

fn malformed_with(text: &'static str) -> impl Fn(&Error) -> bool {
    move |e| matches!(e.kind(), Error::Malformed { reason, .. } if reason.contains(text))
}

fn limit_on(text: &'static str) -> impl Fn(&Error) -> bool {
    move |e| matches!(e.kind(), Error::LimitExceeded { what, .. } if what.contains(text))
}

fn is_truncated(e: &Error) -> bool {
    matches!(e.kind(), Error::Truncated { .. })
}

fn is_unsupported(e: &Error) -> bool {
    matches!(e.kind(), Error::Unsupported(_))
}

/// Opens a file image and reads every component; returns the first error.
fn open_and_read(bytes: &[u8]) -> Result<usize, Error> {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let path = DIR
        .get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .join("hostile.pt");
    std::fs::write(&path, bytes).unwrap();
    let reader = PickleReader::open(&path)?;
    for name in reader.names() {
        reader.dense(name)?;
    }
    Ok(reader.len())
}

struct Budget {
    before: usize,
    started: Instant,
}

impl Budget {
    fn start() -> Budget {
        let before = zt_testkit::CountingAllocator::current();
        zt_testkit::CountingAllocator::reset_peak();
        Budget {
            before,
            started: Instant::now(),
        }
    }

    /// Peak memory within a small multiple of the input (the machine keeps a few dozen bytes
    /// per pickle byte at most), and no hang.
    fn check(&self, case: &str, input_len: usize) {
        let used = zt_testkit::CountingAllocator::peak().saturating_sub(self.before);
        let allowed = 64 * input_len + (8 << 20);
        assert!(
            used <= allowed,
            "{case}: allocated {used} bytes for {input_len} bytes of input"
        );
        let elapsed = self.started.elapsed();
        if elapsed > Duration::from_millis(300) {
            eprintln!("  {case}: {elapsed:?}");
        }
        assert!(
            elapsed < Duration::from_secs(20),
            "{case}: took {elapsed:?}"
        );
    }
}

fn expect_file(case: &str, bytes: &[u8], check: impl Fn(&Error) -> bool) {
    let budget = Budget::start();
    match open_and_read(bytes) {
        Ok(n) => panic!("{case}: opened with {n} tensors"),
        Err(e) => assert!(check(&e), "{case}: unexpected error {e}"),
    }
    budget.check(case, bytes.len());
}

fn expect_pickle(case: &str, bytes: &[u8], check: impl Fn(&Error) -> bool) {
    let budget = Budget::start();
    match unpickle(bytes).and_then(|p| flatten(&p).map(|f| f.tensors.len())) {
        Ok(n) => panic!("{case}: unpickled with {n} tensors"),
        Err(e) => assert!(check(&e), "{case}: unexpected error {e}"),
    }
    budget.check(case, bytes.len());
    // The same pickle as a whole checkpoint fails the same way.
    expect_file_quiet(case, &checkpoint(bytes, &[("data/0", F32X6)]), check);
}

fn expect_file_quiet(case: &str, bytes: &[u8], check: impl Fn(&Error) -> bool) {
    match open_and_read(bytes) {
        Ok(n) => panic!("{case} (as a file): opened with {n} tensors"),
        Err(e) => assert!(check(&e), "{case} (as a file): unexpected error {e}"),
    }
}

#[test]
fn hostile_inputs_fail_cleanly() {
    assert_eq!(open_and_read(&valid()).unwrap(), 1);
    let sections: [(&str, fn()); 6] = [
        ("code execution", code_execution_is_refused),
        ("pickle attacks", pickle_attacks),
        ("limits", limits_are_enforced),
        ("tensor attacks", tensor_attacks),
        ("container attacks", container_attacks),
        ("truncations", truncations),
    ];
    for (name, section) in sections {
        let started = Instant::now();
        section();
        eprintln!("{name}: {:?}", started.elapsed());
    }
}

fn code_execution_is_refused() {
    let marker = std::env::temp_dir().join(format!(
        "zt-pwned-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let command = format!("touch {}", marker.display());
    let call = |module: &str, name: &str| {
        P::new()
            .global(module, name)
            .str(&command)
            .raw(b"\x85")
            .reduce()
            .stop()
    };
    expect_pickle("os.system", &call("os", "system"), forbidden("os.system"));
    expect_pickle(
        "posix.system",
        &call("posix", "system"),
        forbidden("posix.system"),
    );
    expect_pickle(
        "builtins.eval",
        &call("builtins", "eval"),
        forbidden("builtins.eval"),
    );
    expect_pickle(
        "__builtin__.eval",
        &call("__builtin__", "eval"),
        forbidden("builtins.eval"),
    );
    expect_pickle(
        "builtins.exec",
        &call("builtins", "exec"),
        forbidden("builtins.exec"),
    );
    expect_pickle(
        "subprocess.Popen",
        &call("subprocess", "Popen"),
        forbidden("subprocess.Popen"),
    );
    // The same call spelled with STACK_GLOBAL, INST and OBJ.
    let stack_global = P(vec![0x80, 4])
        .raw(b"\x8c\x02os\x8c\x06system\x93")
        .str(&command)
        .raw(b"\x85R")
        .stop();
    expect_pickle(
        "STACK_GLOBAL os.system",
        &stack_global,
        forbidden("os.system"),
    );
    let inst = P(Vec::new())
        .mark()
        .str(&command)
        .raw(b"ios\nsystem\n")
        .stop();
    expect_pickle("INST os.system", &inst, forbidden("os.system"));
    let obj = P::new()
        .mark()
        .global("os", "system")
        .str(&command)
        .raw(b"o")
        .stop();
    expect_pickle("OBJ os.system", &obj, forbidden("os.system"));
    // A model's own class, a numpy array, getattr tricks: all refused by name.
    expect_pickle(
        "model class",
        &P::new().global("__main__", "Net").raw(b")\x81").stop(),
        forbidden("__main__.Net"),
    );
    expect_pickle(
        "numpy array",
        &P::new()
            .global("numpy.core.multiarray", "_reconstruct")
            .stop(),
        forbidden("numpy.core.multiarray._reconstruct"),
    );
    expect_pickle(
        "getattr",
        &P::new().global("builtins", "getattr").stop(),
        forbidden("builtins.getattr"),
    );
    expect_pickle(
        "torch.load itself",
        &P::new().global("torch", "load").stop(),
        forbidden("torch.load"),
    );
    // Safe torch rebuilds this reader does not read say what they are.
    expect_pickle(
        "sparse tensor",
        &P::new()
            .global("torch._utils", "_rebuild_sparse_tensor")
            .stop(),
        is_unsupported,
    );
    expect_pickle(
        "quantized storage",
        &P::new().global("torch", "QInt8Storage").stop(),
        is_unsupported,
    );
    expect_pickle(
        "out-of-band buffer",
        &P(vec![0x80, 5, 0x97, b'.']).0,
        is_unsupported,
    );
    expect_pickle(
        "extension registry",
        &P::new().raw(&[0x82, 1]).stop(),
        is_unsupported,
    );
    // Allowed globals cannot be turned into calls they do not make.
    expect_pickle(
        "calling a dtype",
        &P::new().global("torch", "float32").raw(b")R").stop(),
        malformed_with("cannot be called"),
    );
    expect_pickle(
        "calling a string",
        &P::new().str("os.system").raw(b")R").stop(),
        malformed_with("cannot call a str"),
    );
    expect_pickle(
        "foreign persistent id",
        &P::new().mark().str("module").tuple().raw(b"Q").stop(),
        is_unsupported,
    );
    assert!(!marker.exists(), "a pickle ran a command");
}

fn pickle_attacks() {
    expect_pickle("empty", b"", is_truncated);
    expect_pickle("no STOP", &P::new().raw(b"N").0, is_truncated);
    expect_pickle(
        "stack underflow on STOP",
        &P::new().stop(),
        malformed_with("stack underflow"),
    );
    expect_pickle(
        "REDUCE on empty stack",
        &P::new().raw(b"R").stop(),
        malformed_with("underflow"),
    );
    expect_pickle(
        "TUPLE3 of two",
        &P::new().raw(b"NN\x87").stop(),
        malformed_with("underflow"),
    );
    expect_pickle(
        "pop below MARK",
        &P::new().raw(b"N(\x85").stop(),
        malformed_with("underflow"),
    );
    expect_pickle(
        "APPEND to nothing",
        &P::new().raw(b"Na").stop(),
        malformed_with("underflow"),
    );
    expect_pickle(
        "APPEND to a dict",
        &P::new().raw(b"}Na").stop(),
        malformed_with("not a list"),
    );
    expect_pickle(
        "SETITEM on a list",
        &P::new().raw(b"]NNs").stop(),
        malformed_with("not a dict"),
    );
    expect_pickle(
        "TUPLE without MARK",
        &P::new().raw(b"Nt").stop(),
        malformed_with("MARK"),
    );
    expect_pickle(
        "odd dict",
        &P::new().raw(b"(Nd").stop(),
        malformed_with("odd number"),
    );
    expect_pickle(
        "missing memo",
        &P::new().raw(b"h\x05").stop(),
        malformed_with("memo key 5"),
    );
    expect_pickle(
        "missing long memo",
        &P::new().raw(b"j\xff\xff\xff\xff").stop(),
        malformed_with("memo key 4294967295"),
    );
    expect_pickle(
        "unknown opcode",
        &P::new().raw(b"\xff").stop(),
        malformed_with("unknown opcode"),
    );
    expect_pickle(
        "protocol 6",
        &[0x80, 6, b'N', b'.'],
        malformed_with("protocol 6"),
    );
    expect_pickle(
        "huge LONG4",
        &P::new().raw(b"\x8b\xff\xff\xff\x7f").stop(),
        limit_on("LONG"),
    );
    expect_pickle(
        "negative LONG4",
        &P::new().raw(b"\x8b\xff\xff\xff\xff").stop(),
        malformed_with("negative"),
    );
    expect_pickle(
        "LONG4 past the end",
        &P::new().raw(b"\x8b\x00\x01\x00\x00\x01").0,
        is_truncated,
    );
    expect_pickle(
        "BINUNICODE 4 GiB",
        &P::new().raw(b"X\xff\xff\xff\xff").stop(),
        is_truncated,
    );
    expect_pickle(
        "BINBYTES8 2^64-1",
        &P::new().raw(b"\x8e\xff\xff\xff\xff\xff\xff\xff\xff").stop(),
        is_truncated,
    );
    expect_pickle(
        "BINUNICODE8 2^63",
        &P::new().raw(b"\x8d\x00\x00\x00\x00\x00\x00\x00\x80").stop(),
        is_truncated,
    );
    expect_pickle(
        "negative BINSTRING",
        &P::new().raw(b"T\xff\xff\xff\xff").stop(),
        malformed_with("negative"),
    );
    expect_pickle(
        "SHORT_BINUNICODE past the end",
        &P::new().raw(b"\x8c\xc8ab").0,
        is_truncated,
    );
    expect_pickle(
        "FRAME past the end",
        &P::new().raw(b"\x95\x00\x00\x00\x00\x01\x00\x00\x00").stop(),
        is_truncated,
    );
    expect_pickle(
        "GLOBAL without newline",
        &P::new().raw(b"cos").0,
        is_truncated,
    );
    expect_pickle(
        "text INT not a number",
        &P::new().raw(b"Ixyz\n").stop(),
        malformed_with("INT"),
    );
    expect_pickle(
        "REDUCE of a list",
        &P::new()
            .global("collections", "OrderedDict")
            .raw(b"]R")
            .stop(),
        malformed_with("not a tuple"),
    );
    expect_pickle(
        "BUILD on an int",
        &P::new().raw(b"K\x01}b").stop(),
        malformed_with("BUILD"),
    );
    expect_pickle(
        "NEWOBJ of a rebuild function",
        &P::new()
            .global("torch._utils", "_rebuild_tensor_v2")
            .raw(b")\x81")
            .stop(),
        malformed_with("NEWOBJ"),
    );

    // Billion laughs: each list holds ten references to the previous one, 10^30 paths to the
    // empty dict at the bottom. The machine builds 31 small objects; the walk stops at its step
    // budget.
    let mut bomb = P::new().raw(b"}q\x00");
    for level in 0u8..30 {
        bomb = bomb.mark();
        for _ in 0..10 {
            bomb = bomb.raw(&[b'h', level]);
        }
        bomb = bomb.raw(&[b'l', b'q', level + 1]);
    }
    let bomb = bomb.stop();
    let pickle = unpickle(&bomb).unwrap();
    assert!(pickle.len() < 100);
    expect_pickle("billion laughs", &bomb, limit_on("values visited"));
    // The same with a dict of tensors would name 10^30 tensors: the walk stops just the same.

    // Recursive structures: a list and a dict that contain themselves open with no tensors.
    let self_list = P::new().raw(b"]q\x00h\x00a").stop();
    let self_dict = P::new().raw(b"}q\x00X\x01\x00\x00\x00ah\x00s").stop();
    for (case, bytes) in [("self list", self_list), ("self dict", self_dict)] {
        let budget = Budget::start();
        let pickle = unpickle(&bytes).unwrap();
        let flat = flatten(&pickle).unwrap();
        assert!(flat.tensors.is_empty(), "{case}");
        assert_eq!(
            open_and_read(&checkpoint(&bytes, &[])).unwrap(),
            0,
            "{case}"
        );
        budget.check(case, bytes.len());
    }

    // The memo holds references: 100k BINGETs of one big string cost a slot each, not a copy.
    let big = "x".repeat(1 << 20);
    let mut dups = P::new().raw(b"]").str(&big).raw(b"q\x000(");
    for _ in 0..100_000 {
        dups = dups.raw(b"h\x00");
    }
    let dups = dups.raw(b"e").stop();
    let budget = Budget::start();
    let pickle = unpickle(&dups).unwrap();
    assert!(pickle.len() < 10);
    budget.check("memo references", dups.len());
    // Walking it would clone 100 GB of metadata text: the metadata budget stops it.
    expect_pickle("metadata bomb", &dups, limit_on("metadata"));
}

fn limits_are_enforced() {
    let small = |f: fn(&mut Limits)| {
        let mut limits = Limits::default();
        f(&mut limits);
        limits
    };
    let run = |limits: &Limits, bytes: &[u8]| -> Result<usize, Error> {
        let (pickle, _) = unpickle_at(bytes, 0, limits)?;
        Ok(flatten_with(&pickle, limits)?.tensors.len())
    };
    let nones = |n: usize| P::new().raw(&b"N0".repeat(n)).raw(b"N").stop();
    let cases: Vec<(&str, Limits, Vec<u8>, &str)> = vec![
        (
            "opcodes",
            small(|l| l.max_opcodes = 100),
            nones(100),
            "opcodes",
        ),
        (
            "pickle length",
            small(|l| l.max_pickle_len = 10),
            nones(10),
            "pickle",
        ),
        (
            "stack",
            small(|l| l.max_stack_len = 50),
            P::new().raw(&b"N".repeat(51)).stop(),
            "stack",
        ),
        (
            "marks",
            small(|l| l.max_mark_depth = 5),
            P::new().raw(&b"(".repeat(6)).raw(&b"t".repeat(6)).stop(),
            "MARK",
        ),
        (
            "memo",
            small(|l| l.max_memo_len = 3),
            P(vec![0x80, 4]).raw(&b"N\x94".repeat(4)).stop(),
            "memo",
        ),
        (
            "objects",
            small(|l| l.max_objects = 3),
            P::new().raw(b"]0]0]0]").stop(),
            "objects",
        ),
        (
            "container items",
            small(|l| l.max_container_items = 10),
            P::new().raw(b"](").raw(&b"N".repeat(11)).raw(b"e").stop(),
            "containers",
        ),
        (
            "LONG bytes",
            small(|l| l.max_long_bytes = 8),
            P::new().int(1).stop(),
            "LONG",
        ),
        (
            "nesting",
            small(|l| l.max_nesting = 3),
            P::new().raw(b"]]]]]").raw(b"aaaa").stop(),
            "nesting",
        ),
        (
            "walk steps",
            small(|l| l.max_walk_steps = 5),
            P::new().raw(b"](").raw(&b"]".repeat(6)).raw(b"e").stop(),
            "visited",
        ),
        (
            "name length",
            small(|l| l.max_name_len = 4),
            P::new().raw(b"}").str("abcde").raw(b"Ns").stop(),
            "name",
        ),
        (
            "walk bytes",
            small(|l| l.max_walk_bytes = 8),
            P::new().raw(b"}").str("abcdefghi").raw(b"Ns").stop(),
            "names built",
        ),
        (
            "metadata",
            small(|l| l.max_metadata_bytes = 8),
            P::new()
                .raw(b"}")
                .str("a")
                .str("0123456789")
                .raw(b"s")
                .stop(),
            "metadata",
        ),
    ];
    for (case, limits, bytes, what) in cases {
        match run(&limits, &bytes) {
            Ok(n) => panic!("limit {case}: passed with {n} tensors"),
            Err(e) => assert!(limit_on(what)(&e), "limit {case}: {e}"),
        }
        // One notch looser passes where the limit alone was the obstacle.
        assert!(run(&Limits::default(), &bytes).is_ok(), "{case}");
    }
    // The rank limit is fixed: 65 dimensions are refused.
    let dims = vec![1i128; 65];
    expect_file(
        "rank 65",
        &checkpoint(
            &state_dict("FloatStorage", 6, 0, &dims, &dims),
            &[("data/0", F32X6)],
        ),
        limit_on("rank"),
    );
}

fn tensor_attacks() {
    let file = |numel: i128, offset: i128, size: &[i128], stride: &[i128], record: &[u8]| {
        checkpoint(
            &state_dict("FloatStorage", numel, offset, size, stride),
            &[("data/0", record)],
        )
    };
    let out_of_bounds = |e: &Error| matches!(e.kind(), Error::OutOfBounds { .. });
    let overflow = |e: &Error| matches!(e.kind(), Error::ShapeOverflow(_));
    expect_file(
        "offset past storage",
        &file(6, 100, &[2, 3], &[3, 1], F32X6),
        out_of_bounds,
    );
    expect_file(
        "view past storage",
        &file(6, 1, &[2, 3], &[3, 1], F32X6),
        out_of_bounds,
    );
    expect_file(
        "stride past storage",
        &file(6, 0, &[2, 3], &[4, 1], F32X6),
        out_of_bounds,
    );
    expect_file(
        "huge dims",
        &file(6, 0, &[1 << 40, 1 << 40], &[0, 0], F32X6),
        overflow,
    );
    expect_file(
        "huge stride",
        &file(6, 0, &[2, 3], &[1 << 62, 1], F32X6),
        overflow,
    );
    expect_file(
        "huge offset",
        &file(6, 1 << 62, &[1], &[1], F32X6),
        overflow,
    );
    expect_file(
        "negative dim",
        &file(6, 0, &[-1, 3], &[3, 1], F32X6),
        malformed_with("non-negative"),
    );
    expect_file(
        "negative stride",
        &file(6, 5, &[2], &[-1], F32X6),
        malformed_with("non-negative"),
    );
    expect_file(
        "storage numel larger than its record",
        &file(1 << 20, 0, &[2], &[1], F32X6),
        malformed_with("declares"),
    );
    expect_file(
        "storage numel overflow",
        &file(1 << 62, 0, &[2], &[1], F32X6),
        malformed_with("overflows"),
    );
    expect_file(
        "missing storage record",
        &checkpoint(&state_dict("FloatStorage", 6, 0, &[2, 3], &[3, 1]), &[]),
        malformed_with("no data record"),
    );
    expect_file(
        "size and stride disagree",
        &file(6, 0, &[2, 3], &[1], F32X6),
        malformed_with("strides"),
    );
    // `expand` to 8 GiB from 4 bytes: refused before any allocation.
    expect_file(
        "expanded view",
        &file(1, 0, &[1 << 31], &[0], &[0; 4]),
        limit_on("overlapping view"),
    );
    // A dimension of size 1 with an absurd stride never moves the address: it reads fine.
    assert_eq!(
        open_and_read(&file(6, 0, &[1, 2, 3], &[i64::MAX as i128, 3, 1], F32X6)).unwrap(),
        1
    );
    // Tensors under the same name twice.
    let p = P::new().raw(b"}").mark().str("w");
    let p = tensor(p, "FloatStorage", "0", 6, 0, &[6], &[1]).str("w");
    let twice = tensor(p, "FloatStorage", "0", 6, 0, &[6], &[1])
        .raw(b"u")
        .stop();
    // A key repeated within one dict keeps one entry, as Python's dict does.
    assert_eq!(
        open_and_read(&checkpoint(&twice, &[("data/0", F32X6)])).unwrap(),
        1
    );
    let p = P::new().raw(b"}").mark().str("a.b");
    let p = tensor(p, "FloatStorage", "0", 6, 0, &[6], &[1])
        .str("a")
        .raw(b"}")
        .str("b");
    let clash = tensor(p, "FloatStorage", "0", 6, 0, &[6], &[1])
        .raw(b"su")
        .stop();
    expect_file(
        "two paths, one name",
        &checkpoint(&clash, &[("data/0", F32X6)]),
        |e| matches!(e.kind(), Error::DuplicateName(n) if n == "a.b"),
    );
    // A persistent id whose class is not a storage class, or a tensor over a non-storage.
    let bad_pid = P::new()
        .mark()
        .str("storage")
        .str("FloatStorage")
        .str("0")
        .str("cpu")
        .int(1)
        .tuple()
        .raw(b"Q")
        .stop();
    expect_pickle(
        "persistent id without a class",
        &bad_pid,
        malformed_with("storage class"),
    );
    let not_storage = P::new()
        .global("torch._utils", "_rebuild_tensor_v2")
        .mark()
        .str("fake")
        .int(0)
        .ints(&[1])
        .ints(&[1])
        .raw(b"\x89N")
        .tuple()
        .reduce()
        .stop();
    expect_pickle(
        "tensor over a string",
        &not_storage,
        malformed_with("not a storage"),
    );
}

fn container_attacks() {
    let budget = Budget::start();
    let valid = valid();
    budget.check("valid", valid.len());
    expect_file("empty file", b"", |e| {
        matches!(e.kind(), Error::BadMagic { .. })
    });
    expect_file("wrong magic", b"GARBAGE FILE", |e| {
        matches!(e.kind(), Error::BadMagic { .. })
    });
    let mut tar = vec![0u8; 1024];
    tar[257..262].copy_from_slice(b"ustar");
    expect_file("tar format", &tar, is_unsupported);
    expect_file(
        "bare pickle",
        &P::new().raw(b"K\x05").stop(),
        malformed_with("magic number"),
    );
    expect_file(
        "zip without data.pkl",
        &{
            let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
            zip.start_file("archive/other", SimpleFileOptions::default())
                .unwrap();
            zip.finish().unwrap().into_inner()
        },
        malformed_with("data.pkl"),
    );
    expect_file(
        "TorchScript archive",
        &checkpoint(
            &state_dict("FloatStorage", 6, 0, &[6], &[1]),
            &[("constants.pkl", b"")],
        ),
        is_unsupported,
    );
    let mut bad_order = valid.clone();
    let order = checkpoint(
        &state_dict("FloatStorage", 6, 0, &[6], &[1]),
        &[("data/0", F32X6), ("byteorder", b"middle")],
    );
    bad_order.clear();
    bad_order.extend(order);
    expect_file("byteorder middle", &bad_order, malformed_with("byteorder"));

    // Zip bombs. A deflated record whose central directory claims 2 GiB from a few bytes is
    // refused before inflating; one that inflates past its claim stops at the claim.
    let zeros = vec![0u8; 1 << 20];
    let pickle = state_dict("ByteStorage", 1 << 20, 0, &[1 << 20], &[1]);
    let honest = zip_file(&pickle, &[("data/0", &zeros)], CompressionMethod::Deflated);
    assert_eq!(open_and_read(&honest).unwrap(), 1);
    let claim = |bytes: &[u8], size: u32| {
        // Patch the uncompressed size of `archive/data/0` in the central directory (and the
        // local header, which some readers prefer).
        let mut out = bytes.to_vec();
        let name = b"archive/data/0";
        let mut i = 0;
        while let Some(pos) = find(&out[i..], name) {
            let at = i + pos;
            if at >= 46 && out[at - 46..at - 42] == *b"PK\x01\x02" {
                out[at - 46 + 24..at - 46 + 28].copy_from_slice(&size.to_le_bytes());
            }
            if at >= 30 && out[at - 30..at - 26] == *b"PK\x03\x04" {
                out[at - 30 + 22..at - 30 + 26].copy_from_slice(&size.to_le_bytes());
            }
            i = at + 1;
        }
        out
    };
    let is_decompress = |e: &Error| matches!(e.kind(), Error::Decompress { .. });
    expect_file(
        "deflate claims 2 GiB",
        &claim(&honest, 0x7fff_ffff),
        is_decompress,
    );
    let short = state_dict("ByteStorage", 1000, 0, &[1000], &[1]);
    let shorter = claim(
        &zip_file(&short, &[("data/0", &zeros)], CompressionMethod::Deflated),
        1000,
    );
    expect_file("deflate inflates past its claim", &shorter, is_decompress);
    // A stored record that claims more than it holds, or lies past the end of the file.
    let stored = claim(&valid, 1 << 30);
    expect_file("stored record size lies", &stored, |e| {
        matches!(
            e.kind(),
            Error::Malformed { .. } | Error::OutOfBounds { .. }
        )
    });

    // Legacy files.
    let object = state_dict("FloatStorage", 6, 0, &[2, 3], &[3, 1]);
    assert_eq!(
        open_and_read(&legacy(&object, &["0"], &[(6, F32X6)])).unwrap(),
        1
    );
    expect_file(
        "legacy huge count",
        &legacy(&object, &["0"], &[(u64::MAX, F32X6)]),
        is_truncated,
    );
    expect_file(
        "legacy count disagrees",
        &legacy(&object, &["0"], &[(5, &F32X6[..20])]),
        malformed_with("declare"),
    );
    expect_file(
        "legacy unknown key",
        &legacy(&object, &["9"], &[(6, F32X6)]),
        malformed_with("no tensor uses it"),
    );
    expect_file(
        "legacy key missing",
        &legacy(&object, &[], &[]),
        malformed_with("no data record"),
    );
    expect_file(
        "legacy key twice",
        &legacy(&object, &["0", "0"], &[(6, F32X6), (6, F32X6)]),
        malformed_with("twice"),
    );
    let mut wrong_version = P::new().int(zt_pickle::LEGACY_MAGIC).stop();
    wrong_version.extend(P::new().int(1000).stop());
    expect_file("legacy version", &wrong_version, malformed_with("1001"));
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn truncations() {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pickle");
    let files = [
        std::fs::read(fixtures.join("single_tensor.pt")).unwrap(),
        std::fs::read(fixtures.join("legacy_proto4.pt")).unwrap(),
        legacy(
            &state_dict("FloatStorage", 6, 0, &[2, 3], &[3, 1]),
            &["0"],
            &[(6, F32X6)],
        ),
        valid(),
    ];
    for file in &files {
        assert!(open_and_read(file).is_ok());
        for len in 0..file.len() {
            let budget = Budget::start();
            match open_and_read(&file[..len]) {
                Ok(n) => panic!(
                    "truncated at {len} of {}: opened with {n} tensors",
                    file.len()
                ),
                Err(e) => {
                    // Whatever the cut hits, the message says what is wrong.
                    assert!(!e.to_string().is_empty());
                }
            }
            budget.check("truncation", len);
        }
    }
    // Flipping any byte of a legacy file (pickles, counts, data) never panics either; the fuzz
    // targets do this and more for every format.
    let small = &files[2];
    for i in 0..small.len() {
        let mut flipped = small.clone();
        flipped[i] ^= 0xff;
        let _ = open_and_read(&flipped);
    }
    // The pickle machine alone, on every prefix of a real data.pkl.
    let pickle = state_dict("FloatStorage", 6, 0, &[2, 3], &[3, 1]);
    for len in 0..pickle.len() {
        assert!(unpickle(&pickle[..len]).is_err(), "prefix {len}");
    }
    let full = unpickle(&pickle).unwrap();
    assert!(matches!(full.object(full.root), Some(Object::Dict(_))));
}
