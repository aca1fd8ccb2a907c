//! Reader for zTensor 2.x .zt files
