//! Reader for NumPy .npy and .npz files
