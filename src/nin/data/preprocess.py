"""The paper's preprocessing as pure functions: arrays in, arrays out (no paths, no randomness).

The NIN paper preprocessed CIFAR and SVHN "as in the maxout paper", i.e. with pylearn2's
`make_cifar10_gcn_whitened.py` / `make_svhn_pytables.py` scripts; the constants below are theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

# pylearn2 cifar10 gcn_whitened: GlobalContrastNormalization(subtract_mean=True, scale=55.)
GCN_SCALE = 55.0
# pylearn2 global_contrast_normalize: norms below this are treated as 1 (flat images stay flat).
GCN_MIN_DIVISOR = 1e-8
# pylearn2 cifar10 gcn_whitened: ZCA(filter_bias=.1), added to the covariance's diagonal.
ZCA_FILTER_BIAS = 0.1
# pylearn2 lecun_lcn as used for maxout's SVHN: 7x7 Gaussian (sigma 2, normalised to sum 1),
# divisor floored at 1e-4.
LCN_KERNEL_SIZE = 7
LCN_SIGMA = 2.0
LCN_THRESHOLD = 1e-4


def global_contrast_normalize(x: np.ndarray, scale: float = GCN_SCALE,
                              min_divisor: float = GCN_MIN_DIVISOR, chunk: int = 5_000) -> np.ndarray:
    """Per row of x (N, D): subtract its mean, divide by its L2 norm, multiply by `scale`.

    Rows are independent, so they are done `chunk` at a time: the float64 temporaries of
    50,000 CIFAR images would otherwise take 2.5 GB, more than the result itself.
    """
    out = np.empty(np.shape(x), dtype=np.float32)
    for start in range(0, len(x), chunk):
        rows = np.asarray(x[start:start + chunk], dtype=np.float32)
        centred = rows - rows.mean(axis=1, keepdims=True)
        norms = np.sqrt(np.einsum("ij,ij->i", centred, centred, dtype=np.float64))[:, None] / scale
        norms[norms < min_divisor] = 1.0
        out[start:start + chunk] = centred / norms
    return out


@dataclass(frozen=True)
class ZcaParams:
    mean: np.ndarray     # (D,) float32
    matrix: np.ndarray   # (D, D) float32, symmetric


def fit_zca(x: np.ndarray, filter_bias: float = ZCA_FILTER_BIAS, chunk: int = 10_000) -> ZcaParams:
    """ZCA whitening fitted on x (N, D), the training split only.

    W = V diag(1 / sqrt(lambda)) V^T, with (V, lambda) the eigendecomposition of
    X_c^T X_c / N + filter_bias * I, as pylearn2's ZCA.fit does. X_c^T X_c is summed over
    chunks of rows, so no centred copy of x is ever held whole.
    """
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    starts = range(0, len(data), chunk)
    mean = (sum(data[s:s + chunk].sum(dim=0, dtype=torch.float64) for s in starts) / len(data)).float()
    # X^T X in float32 (the expensive part), eigendecomposition in float64 for accuracy.
    covariance = sum((data[s:s + chunk] - mean).T @ (data[s:s + chunk] - mean) for s in starts).double() / len(data)
    covariance += filter_bias * torch.eye(covariance.shape[0], dtype=torch.float64)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    matrix = (eigenvectors * eigenvalues.rsqrt()) @ eigenvectors.T
    return ZcaParams(mean.numpy(), matrix.float().numpy())


def apply_zca(x: np.ndarray, params: ZcaParams, chunk: int = 10_000) -> np.ndarray:
    """(x - mean) W for x (N, D), in chunks so that only one float copy is held."""
    matrix = torch.from_numpy(params.matrix)
    mean = torch.from_numpy(params.mean)
    out = np.empty((len(x), matrix.shape[0]), dtype=np.float32)
    for start in range(0, len(x), chunk):
        block = torch.from_numpy(np.asarray(x[start:start + chunk], dtype=np.float32))
        out[start:start + chunk] = ((block - mean) @ matrix).numpy()
    return out


def gcn_zca_images(x: np.ndarray, params: ZcaParams) -> np.ndarray:
    """Images (N, C, H, W) -> GCN then ZCA whitening per image, same shape, float32.

    The whitening is per pixel, so the images must have the size it was fitted on.
    """
    flat = global_contrast_normalize(np.asarray(x).reshape(len(x), -1))
    return apply_zca(flat, params).reshape(np.shape(x))


# pack_symmetric keeps this fraction of the entries, the largest, exactly (float32).
EXACT_FRACTION = 0.02


@dataclass(frozen=True)
class PackedSymmetric:
    """A symmetric matrix in a quarter of its float32 size: its upper triangle (row by row) in float16,
    with the largest entries kept exactly. Why: CIFAR's ZCA matrix, 3,072 x 3,072, is 38 MB in float32;
    packed it is 10 MB. Float16 alone moved whitened pixels by up to 0.01 and changed 2-3 of 10,000 test
    predictions of a CIFAR-10 model; with the largest 2% of entries exact (60% of the weight mass)
    the change is under 5e-4, below the float16 rounding of the preprocessing cache itself."""
    upper: np.ndarray         # (n (n + 1) / 2,) float16
    exact_index: np.ndarray   # (k,) int32: positions in `upper` of the entries kept exactly
    exact_value: np.ndarray   # (k,) float32


def pack_symmetric(matrix: np.ndarray, exact_fraction: float = EXACT_FRACTION) -> PackedSymmetric:
    rows, cols = np.triu_indices(len(matrix))
    upper = np.asarray(matrix[rows, cols], dtype=np.float32)
    k = int(round(len(upper) * exact_fraction))
    if k >= len(upper):
        largest = np.arange(len(upper))
    else:
        largest = np.sort(np.argpartition(-np.abs(upper), k)[:k])
    return PackedSymmetric(upper.astype(np.float16), largest.astype(np.int32), upper[largest])


def unpack_symmetric(packed: PackedSymmetric, n: int) -> np.ndarray:
    """The float32 symmetric n x n matrix that `packed` holds (pack_symmetric's inverse, up to float16)."""
    if len(packed.upper) != n * (n + 1) // 2:
        raise ValueError(f"{len(packed.upper)} values are not the upper triangle of a {n} x {n} matrix")
    upper = packed.upper.astype(np.float32)
    upper[packed.exact_index] = packed.exact_value
    matrix = np.empty((n, n), dtype=np.float32)
    rows, cols = np.triu_indices(n)
    matrix[rows, cols] = upper
    matrix[cols, rows] = upper
    return matrix


def gaussian_kernel(size: int = LCN_KERNEL_SIZE, sigma: float = LCN_SIGMA) -> np.ndarray:
    """A (size, size) Gaussian normalised to sum 1, centred on the middle pixel."""
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).astype(np.float32)


def local_contrast_normalize(x: np.ndarray, kernel_size: int = LCN_KERNEL_SIZE, sigma: float = LCN_SIGMA,
                             threshold: float = LCN_THRESHOLD) -> np.ndarray:
    """LeCun's LCN per channel on images x (N, C, H, W), as pylearn2's lecun_lcn.

    Subtract the Gaussian-weighted local mean; divide by the larger of the local
    (Gaussian-weighted) norm and its mean over the image, floored at `threshold`.
    Borders are zero-padded, as pylearn2's 'full' convolution cropped to the image.
    """
    images = torch.from_numpy(np.asarray(x, dtype=np.float32))
    n, c, h, w = images.shape
    flat = images.reshape(n * c, 1, h, w)
    kernel = torch.from_numpy(gaussian_kernel(kernel_size, sigma)).view(1, 1, kernel_size, kernel_size)
    pad = kernel_size // 2
    centred = flat - F.conv2d(flat, kernel, padding=pad)
    local_norm = F.conv2d(centred.square(), kernel, padding=pad).sqrt()
    per_image = local_norm.mean(dim=(2, 3), keepdim=True)
    divisor = torch.maximum(local_norm, per_image).clamp(min=threshold)
    return (centred / divisor).reshape(n, c, h, w).numpy()
