//! Turning stored `.npy` element bytes into little-endian, C-order ones.

use crate::header::{NpyHeader, needs_transpose};

/// The element bytes NumPy would hand out (`np.ascontiguousarray` in little-endian order) for
/// `stored`, which holds exactly `header.data_len` bytes.
pub fn to_little_endian_c_order(stored: &[u8], header: &NpyHeader) -> Vec<u8> {
    let dims = header.shape.dims();
    let item = header.item_size() as usize;
    let mut out = if header.fortran_order && needs_transpose(dims) {
        fortran_to_c(stored, dims, item)
    } else {
        stored.to_vec()
    };
    if header.big_endian {
        // Complex numbers swap each of their two parts: the unit is the storage dtype.
        for unit in out.chunks_exact_mut(header.dtype.size()) {
            unit.reverse();
        }
    }
    out
}

/// Reorders a column-major array of `item`-byte elements into row-major order.
///
/// `src.len()` is `numel(dims) * item`, checked against the file by the caller, so every
/// product below fits in `usize`.
fn fortran_to_c(src: &[u8], dims: &[u64], item: usize) -> Vec<u8> {
    let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let total: usize = dims.iter().product();
    if total == 0 || item == 0 {
        return Vec::new();
    }
    // Column-major strides, in elements: the first axis varies fastest.
    let strides: Vec<usize> = dims
        .iter()
        .scan(1usize, |acc, &d| {
            let stride = *acc;
            *acc *= d;
            Some(stride)
        })
        .collect();
    let (last, outer) = dims
        .split_last()
        .expect("transposed arrays have 2+ dimensions");
    let last_stride = strides[outer.len()];
    let mut out = Vec::with_capacity(total * item);
    let mut index = vec![0usize; outer.len()];
    // Source element of the current row's first element.
    let mut base = 0usize;
    for _ in 0..total / last {
        for j in 0..*last {
            let at = (base + j * last_stride) * item;
            out.extend_from_slice(&src[at..at + item]);
        }
        // Advance the row index like an odometer, last outer axis fastest.
        for k in (0..outer.len()).rev() {
            index[k] += 1;
            base += strides[k];
            if index[k] < outer[k] {
                break;
            }
            base -= strides[k] * outer[k];
            index[k] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_becomes_c_order() {
        // A 2x3 matrix [[0,1,2],[3,4,5]] stored column-major: 0 3 1 4 2 5.
        let src = [0u8, 3, 1, 4, 2, 5];
        assert_eq!(fortran_to_c(&src, &[2, 3], 1), [0, 1, 2, 3, 4, 5]);
        // 2x3x2 of u16: element (i, j, k) = 100*i + 10*j + k, stored column-major.
        let dims = [2u64, 3, 2];
        let mut src = Vec::new();
        for k in 0..2u16 {
            for j in 0..3u16 {
                for i in 0..2u16 {
                    src.extend_from_slice(&(100 * i + 10 * j + k).to_le_bytes());
                }
            }
        }
        let out = fortran_to_c(&src, &dims, 2);
        let values: Vec<u16> = out
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(values, [0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121]);
        assert!(fortran_to_c(&[], &[0, 3], 4).is_empty());
    }
}
