//! Timing, byte touching and table printing shared by the subcommands.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

pub const MIB: f64 = (1u64 << 20) as f64;

/// Reads every byte of `bytes` (as a wrapping sum of u64 words) so that lazily mapped pages
/// really are faulted in and copied data really is read.
pub fn touch(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut sum = 0u64;
    for word in &mut words {
        let word: [u8; 8] = word.try_into().expect("chunks_exact yields 8 bytes");
        sum = sum.wrapping_add(u64::from_le_bytes(word));
    }
    for &b in words.remainder() {
        sum = sum.wrapping_add(u64::from(b));
    }
    black_box(sum)
}

/// Median, fastest and slowest of the timed runs.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Stats {
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub runs: usize,
}

/// Calls `run` `warmup` times untimed, then `runs` times, and summarises the durations it
/// returns. Each call times only its own measured part, so it can prepare (remove a file, drop
/// the page cache) before starting its clock.
pub fn measure(
    runs: usize,
    warmup: usize,
    mut run: impl FnMut() -> Result<Duration>,
) -> Result<Stats> {
    anyhow::ensure!(runs > 0, "at least one timed run is needed");
    for _ in 0..warmup {
        run()?;
    }
    let times = (0..runs)
        .map(|_| run().map(|d| d.as_secs_f64()))
        .collect::<Result<Vec<_>>>()?;
    Stats::from_seconds(times)
}

impl Stats {
    /// Median, fastest and slowest of durations in seconds measured elsewhere (for runs that
    /// interleave several operations, which [`measure`] cannot).
    pub fn from_seconds(mut times: Vec<f64>) -> Result<Stats> {
        anyhow::ensure!(!times.is_empty(), "at least one timed run is needed");
        times.sort_by(f64::total_cmp);
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2.0
        };
        Ok(Stats {
            median_s: median,
            min_s: times[0],
            max_s: times[n - 1],
            runs: n,
        })
    }
}

/// Removes a file if it exists.
pub fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Bytes with a unit that suits them.
pub fn format_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else if bytes >= 1024 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// A duration with a unit that suits it.
pub fn format_duration(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 1e-3 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{:.1} µs", seconds * 1e6)
    }
}

/// Bytes in MiB with one decimal.
pub fn format_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

/// Prints a markdown table whose columns are padded to line up: the first `left` columns
/// (text) are left-aligned, the others (figures) right-aligned.
pub fn print_table(headers: &[&str], left: usize, rows: &[Vec<String>]) {
    print!("{}", format_table(headers, left, rows));
}

/// The markdown table [`print_table`] prints, one line per row, each ending in a newline.
pub fn format_table(headers: &[&str], left: usize, rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([headers[i].chars().count(), 3])
            .max()
            .unwrap_or(3)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    };
    let pad = |i: usize, text: &str| {
        if i < left {
            format!("{text:<w$}", w = widths[i])
        } else {
            format!("{text:>w$}", w = widths[i])
        }
    };
    line(headers.iter().enumerate().map(|(i, h)| pad(i, h)).collect());
    line(
        widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                if i < left {
                    "-".repeat(w)
                } else {
                    format!("{}:", "-".repeat(w - 1))
                }
            })
            .collect(),
    );
    for row in rows {
        line(row.iter().enumerate().map(|(i, c)| pad(i, c)).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_sums_words_and_tail() {
        let mut bytes = vec![0u8; 19];
        bytes[0] = 1;
        bytes[8] = 2;
        bytes[18] = 3;
        assert_eq!(touch(&bytes), 6);
    }

    #[test]
    fn median_of_even_and_odd_runs() {
        let mut times = [3u64, 1, 2, 5].into_iter();
        let stats = measure(4, 0, || Ok(Duration::from_secs(times.next().unwrap_or(0)))).unwrap();
        assert_eq!(stats.median_s, 2.5);
        assert_eq!((stats.min_s, stats.max_s), (1.0, 5.0));
        let mut times = [3u64, 1, 2].into_iter();
        let stats = measure(3, 0, || Ok(Duration::from_secs(times.next().unwrap_or(0)))).unwrap();
        assert_eq!(stats.median_s, 2.0);
    }
}
