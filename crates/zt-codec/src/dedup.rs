//! Whole-buffer redundancy, found before any chunk is coded: a buffer that is one block
//! repeated (a period), and chunks equal to earlier chunks. Both become copy segments, which
//! cost a few bytes of segment table however long they are.

use std::collections::HashMap;

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_128;

/// A planned segment of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Coded {
        start: usize,
        len: usize,
    },
    Copy {
        start: usize,
        len: usize,
        dist: usize,
    },
}

impl Seg {
    pub(crate) fn len(&self) -> usize {
        match self {
            Seg::Coded { len, .. } | Seg::Copy { len, .. } => *len,
        }
    }
}

/// Bytes of the probe searched for when looking for a period.
const NEEDLE: usize = 64;
/// Buffers shorter than this are not searched for a period.
const MIN_PERIOD_SEARCH: usize = 4 << 10;
/// The longest period searched for (longer repeats of whole chunks are still found by the
/// chunk fingerprints).
const MAX_PERIOD: usize = 8 << 20;
/// Candidate periods verified before giving up.
const MAX_TRIES: usize = 16;

/// Splits `data` into chunks, replacing repeats by copies.
pub(crate) fn plan(data: &[u8], chunk_size: usize, esize: usize) -> Vec<Seg> {
    let n = data.len();
    if let Some(p) = find_period(data, esize) {
        let mut segs = grid(0, p, chunk_size);
        segs.push(Seg::Copy {
            start: p,
            len: n - p,
            dist: p,
        });
        return segs;
    }
    let hashes: Vec<u128> = data.par_chunks(chunk_size).map(fingerprint).collect();
    let mut seen: HashMap<u128, Vec<usize>> = HashMap::with_capacity(hashes.len());
    let mut segs: Vec<Seg> = Vec::with_capacity(hashes.len());
    for (i, h) in hashes.into_iter().enumerate() {
        let start = i * chunk_size;
        let len = chunk_size.min(n - start);
        let candidates = seen.entry(h).or_default();
        let earlier = candidates
            .iter()
            .copied()
            .find(|&e| data[e..e + len] == data[start..start + len]);
        match earlier {
            Some(e) => {
                let dist = start - e;
                match segs.last_mut() {
                    // Consecutive copies from the same distance merge into one.
                    Some(Seg::Copy {
                        start: s,
                        len: l,
                        dist: d,
                    }) if *d == dist && *s + *l == start => *l += len,
                    _ => segs.push(Seg::Copy { start, len, dist }),
                }
            }
            None => {
                if candidates.len() < MAX_CANDIDATES {
                    candidates.push(start);
                }
                segs.push(Seg::Coded { start, len });
            }
        }
    }
    segs
}

/// Bytes taken from each of a chunk's start, middle and end for its fingerprint.
const SAMPLE: usize = 256;
/// Earlier chunks with one fingerprint that a chunk is compared with in full.
const MAX_CANDIDATES: usize = 8;

/// A fingerprint of `chunk`: xxh3 of its length and three samples, not of every byte (hashing
/// whole chunks cost 5% of encoding near-random weights, where no chunk ever repeats). Equal
/// chunks have equal fingerprints; chunks are compared in full before one becomes a copy.
fn fingerprint(chunk: &[u8]) -> u128 {
    if chunk.len() <= 4 * SAMPLE {
        return xxh3_128(chunk);
    }
    let mid = chunk.len() / 2 - SAMPLE / 2;
    let mut key = [0u8; 3 * SAMPLE + 8];
    key[..SAMPLE].copy_from_slice(&chunk[..SAMPLE]);
    key[SAMPLE..2 * SAMPLE].copy_from_slice(&chunk[mid..mid + SAMPLE]);
    key[2 * SAMPLE..3 * SAMPLE].copy_from_slice(&chunk[chunk.len() - SAMPLE..]);
    key[3 * SAMPLE..].copy_from_slice(&(chunk.len() as u64).to_le_bytes());
    xxh3_128(&key)
}

fn grid(start: usize, end: usize, chunk_size: usize) -> Vec<Seg> {
    (start..end)
        .step_by(chunk_size)
        .map(|s| Seg::Coded {
            start: s,
            len: chunk_size.min(end - s),
        })
        .collect()
}

/// The smallest `p <= len / 2` (found among a few candidates) with `data[p..] ==
/// data[..len - p]`: the buffer is its first `p` bytes repeated (the last copy possibly cut
/// short). Candidates are the places where a 64-byte probe from near the start recurs; the
/// probe starts past any leading run, so a block that opens with zeros is still found.
pub(crate) fn find_period(data: &[u8], esize: usize) -> Option<usize> {
    let n = data.len();
    if n < MIN_PERIOD_SEARCH {
        return None;
    }
    let half = n / 2;
    let q = data
        .iter()
        .position(|&b| b != data[0])
        .unwrap_or(0)
        .min(half.saturating_sub(NEEDLE));
    let needle = &data[q..q + NEEDLE];
    // Periods up to MAX_PERIOD: on low-entropy data (a few distinct values) the probe's bytes
    // recur everywhere, and searching half of a large buffer cost 9% of its encoding.
    let hay = &data[q + 1..(half.min(MAX_PERIOD) + q + NEEDLE).min(n)];
    let mut tries = 0;
    // `Some(answer)` ends the search.
    let mut try_at = |i: usize| -> Option<Option<usize>> {
        let p = i + 1;
        // Periods that are not whole elements are real but rare; skip them so a chance match
        // inside an element is not paid for.
        if p > half.min(MAX_PERIOD) || (!p.is_multiple_of(esize) && p > NEEDLE) {
            return None;
        }
        if shifted_equal(data, p) {
            return Some(Some(p));
        }
        tries += 1;
        (tries == MAX_TRIES).then_some(None)
    };
    if few_byte_values(&data[q..(q + 4096).min(n)]) {
        // memmem's prefilter looks for rare bytes, and on bytes of a few values (ternary or
        // 2-bit weights in int8) there are none: its search was 29% of a ternary compress.
        // Whole 8-byte words compared at every offset cost the same on any bytes.
        let first = u64::from_le_bytes(needle[..8].try_into().expect("8 bytes"));
        for (i, w) in hay.windows(NEEDLE).enumerate() {
            let word = u64::from_le_bytes(w[..8].try_into().expect("8 bytes"));
            if word == first
                && w == needle
                && let Some(answer) = try_at(i)
            {
                return answer;
            }
        }
    } else {
        for i in memchr::memmem::Finder::new(needle).find_iter(hay) {
            if let Some(answer) = try_at(i) {
                return answer;
            }
        }
    }
    None
}

/// Whether `sample` holds at most 16 distinct byte values.
fn few_byte_values(sample: &[u8]) -> bool {
    let mut seen = [false; 256];
    sample.iter().for_each(|&b| seen[usize::from(b)] = true);
    seen.iter().filter(|&&s| s).count() <= 16
}

/// `data[p..] == data[..len - p]`, compared in parallel pieces.
fn shifted_equal(data: &[u8], p: usize) -> bool {
    const PIECE: usize = 1 << 20;
    let (a, b) = (&data[p..], &data[..data.len() - p]);
    if a.len() <= PIECE {
        return a == b;
    }
    a.par_chunks(PIECE)
        .zip(b.par_chunks(PIECE))
        .all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn finds_a_tiled_block_even_with_a_leading_run() {
        let mut block = vec![0u8; 500];
        block.extend(noise(9_500, 3));
        let data: Vec<u8> = block
            .iter()
            .copied()
            .cycle()
            .take(10_000 * 7 + 123)
            .collect();
        assert_eq!(find_period(&data, 2), Some(10_000));
        assert_eq!(find_period(&vec![7u8; 100_000], 4), Some(1));
        assert_eq!(find_period(&noise(100_000, 5), 1), None);
        // Bytes of three values (ternary weights) take the word-compare search.
        let ternary = |n: usize, seed: u64| -> Vec<u8> {
            noise(n, seed)
                .iter()
                .map(|&b| (b % 3).wrapping_sub(1))
                .collect()
        };
        assert!(few_byte_values(&ternary(4096, 6)));
        assert!(!few_byte_values(&noise(4096, 6)));
        let tiled: Vec<u8> = ternary(7_777, 7)
            .into_iter()
            .cycle()
            .take(100_000)
            .collect();
        assert_eq!(find_period(&tiled, 1), Some(7_777));
        assert_eq!(find_period(&ternary(100_000, 8), 1), None);
        let segs = plan(&data, 4096, 2);
        assert_eq!(
            segs.last(),
            Some(&Seg::Copy {
                start: 10_000,
                len: data.len() - 10_000,
                dist: 10_000
            })
        );
    }

    #[test]
    fn chunks_that_share_their_samples_are_compared_in_full() {
        // Zero at every sampled place, different in between: one fingerprint, three chunks.
        let mut chunks = vec![vec![0u8; 8192]; 4];
        chunks[0][1000] = 1;
        chunks[1][2000] = 1;
        chunks[3][2000] = 1; // equal to chunks[1], not to chunks[0]
        let data = chunks.concat();
        assert_eq!(fingerprint(&chunks[0]), fingerprint(&chunks[1]));
        let segs = plan(&data, 8192, 1);
        assert_eq!(
            segs[3],
            Seg::Copy {
                start: 3 * 8192,
                len: 8192,
                dist: 2 * 8192
            }
        );
        assert!(segs[..3].iter().all(|s| matches!(s, Seg::Coded { .. })));
    }

    #[test]
    fn repeated_chunks_become_merged_copies() {
        let a = noise(4096, 1);
        let b = noise(4096, 2);
        let c = noise(1000, 3);
        let data = [&a[..], &b, &a, &a, &b, &c].concat();
        let segs = plan(&data, 4096, 1);
        assert_eq!(
            segs,
            vec![
                Seg::Coded {
                    start: 0,
                    len: 4096
                },
                Seg::Coded {
                    start: 4096,
                    len: 4096
                },
                Seg::Copy {
                    start: 8192,
                    len: 4096,
                    dist: 8192
                },
                Seg::Copy {
                    start: 12288,
                    len: 8192,
                    dist: 12288
                },
                Seg::Coded {
                    start: 20480,
                    len: 1000
                },
            ]
        );
    }
}
