//! Tensor shapes with overflow-checked element and byte counts.

use std::fmt;

use crate::{DType, Error};

/// The dimensions of a tensor, outermost first (row-major). `[]` is a scalar with one element.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<u64>);

impl Shape {
    pub fn new(dims: impl Into<Vec<u64>>) -> Shape {
        Shape(dims.into())
    }

    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    pub fn dims(&self) -> &[u64] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements; fails instead of wrapping when the product does not fit in `u64`.
    pub fn numel(&self) -> Result<u64, Error> {
        self.0
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::ShapeOverflow(self.0.clone()))
    }

    /// Bytes taken by `numel` elements of `dtype`, overflow-checked.
    pub fn byte_len(&self, dtype: DType) -> Result<u64, Error> {
        self.numel()?
            .checked_mul(dtype.size() as u64)
            .ok_or_else(|| Error::ShapeOverflow(self.0.clone()))
    }
}

impl From<Vec<u64>> for Shape {
    fn from(dims: Vec<u64>) -> Shape {
        Shape(dims)
    }
}

impl From<&[u64]> for Shape {
    fn from(dims: &[u64]) -> Shape {
        Shape(dims.to_vec())
    }
}

impl<const N: usize> From<[u64; N]> for Shape {
    fn from(dims: [u64; N]) -> Shape {
        Shape(dims.to_vec())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(Shape::scalar().numel().unwrap(), 1);
        assert_eq!(Shape::from([2, 3]).numel().unwrap(), 6);
        assert_eq!(Shape::from([2, 0, 3]).numel().unwrap(), 0);
        assert_eq!(Shape::from([2, 3]).byte_len(DType::F64).unwrap(), 48);
        assert_eq!(Shape::from([2, 3]).to_string(), "[2, 3]");
    }

    #[test]
    fn overflow_is_an_error() {
        let huge = Shape::from([1 << 40, 1 << 40]);
        assert!(matches!(huge.numel(), Err(Error::ShapeOverflow(_))));
        let big = Shape::from([1u64 << 62]);
        assert_eq!(big.numel().unwrap(), 1 << 62);
        assert!(matches!(
            big.byte_len(DType::F32),
            Err(Error::ShapeOverflow(_))
        ));
    }
}
