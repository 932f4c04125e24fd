//! [`Tensor`]: a shape and a contiguous row-major `f32` buffer.

use std::fmt;

use crate::kernels::matmul::{GemmSpec, matmul};

/// A dense row-major `f32` tensor. Deliberately small: the kernels work on slices, and a
/// `Tensor` is the owned form for examples, tests and checkpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// The data length does not match the product of the shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// The requested shape.
    pub shape: Vec<usize>,
    /// The number of elements supplied.
    pub len: usize,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shape {:?} needs {} elements, got {}",
            self.shape,
            numel(&self.shape),
            self.len
        )
    }
}

impl std::error::Error for ShapeError {}

/// Number of elements of a shape (1 for the empty shape, a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; numel(shape)],
        }
    }

    /// Wraps `data` with `shape`.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self, ShapeError> {
        if numel(shape) != data.len() {
            return Err(ShapeError {
                shape: shape.to_vec(),
                len: data.len(),
            });
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// A tensor whose element at flat index `i` is `f(i)`.
    pub fn from_fn(shape: &[usize], f: impl FnMut(usize) -> f32) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: (0..numel(shape)).map(f).collect(),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The elements, row-major, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Gives up the buffer.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Same data, new shape.
    pub fn reshape(self, shape: &[usize]) -> Result<Self, ShapeError> {
        Tensor::from_vec(shape, self.data)
    }

    /// Matrix product of two 2-D tensors, `[m, k] x [k, n] -> [m, n]`.
    ///
    /// # Panics
    /// If either tensor is not 2-D or the inner dimensions differ.
    pub fn matmul(&self, rhs: &Tensor) -> Tensor {
        let (&[m, k], &[k2, n]) = (self.shape.as_slice(), rhs.shape.as_slice()) else {
            panic!(
                "matmul needs 2-D tensors, got {:?} and {:?}",
                self.shape, rhs.shape
            );
        };
        assert_eq!(
            k, k2,
            "matmul: inner dimensions differ ({:?} x {:?})",
            self.shape, rhs.shape
        );
        let mut out = Tensor::zeros(&[m, n]);
        matmul(&GemmSpec::nn(m, k, n), &self.data, &rhs.data, &mut out.data);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_small() {
        let a = Tensor::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let b = Tensor::from_fn(&[3, 2], |i| i as f32);
        let c = a.matmul(&b);
        assert_eq!(c.shape(), &[2, 2]);
        assert_eq!(c.data(), &[16.0, 22.0, 34.0, 49.0]);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let err = Tensor::from_vec(&[2, 2], vec![1.0; 3]).unwrap_err();
        assert_eq!(err.to_string(), "shape [2, 2] needs 4 elements, got 3");
    }
}
