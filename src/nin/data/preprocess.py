"""The paper's preprocessing as pure functions: arrays in, arrays out (no paths, no randomness).

The NIN paper preprocessed CIFAR and SVHN "as in the maxout paper", i.e. with pylearn2's
`make_cifar10_gcn_whitened.py` / `make_svhn_pytables.py` scripts; the constants below are theirs.
"""

from __future__ import annotations

import hashlib
import zlib
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
    matrix = (matrix + matrix.T) / 2   # symmetric to the last bit (the product is not), so PackedSymmetric is exact
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


@dataclass(frozen=True)
class PackedSymmetric:
    """A symmetric float32 matrix, losslessly, in 42% of its size: the upper triangle (row by row) as
    float32 bytes split into planes, the plane of sign-and-exponent bytes (few distinct values)
    zlib-compressed; the three low planes are close to random, so they are kept as they are.
    Why: CIFAR's ZCA matrix, 3,072 x 3,072, is 38 MB in float32 and 15.8 MB packed, so a shipped
    CIFAR model stays under 20 MB and whitens new images bit for bit as in training (a float16
    packing changed 6 of 10,000 CIFAR-10 test predictions)."""
    low_bytes: np.ndarray    # (3, n (n + 1) / 2) uint8: bytes 0-2 of each little-endian float32
    high_bytes: np.ndarray   # (m,) uint8: byte 3 of each, zlib-compressed


def pack_symmetric(matrix: np.ndarray) -> PackedSymmetric:
    rows, cols = np.triu_indices(len(matrix))
    planes = np.ascontiguousarray(matrix[rows, cols], dtype="<f4").view(np.uint8).reshape(-1, 4).T
    high = zlib.compress(planes[3].tobytes(), 9)
    return PackedSymmetric(np.ascontiguousarray(planes[:3]), np.frombuffer(high, dtype=np.uint8))


def unpack_symmetric(packed: PackedSymmetric, n: int) -> np.ndarray:
    """The float32 symmetric n x n matrix that `packed` holds, exactly (pack_symmetric's inverse)."""
    size = n * (n + 1) // 2
    try:
        high = np.frombuffer(zlib.decompress(np.asarray(packed.high_bytes, dtype=np.uint8).tobytes()), dtype=np.uint8)
    except zlib.error as e:
        raise ValueError(f"the packed matrix's high bytes do not decompress ({e})") from None
    if packed.low_bytes.shape != (3, size) or high.shape != (size,):
        raise ValueError(f"{packed.low_bytes.shape[-1]} values are not the upper triangle of a {n} x {n} matrix")
    upper = np.empty((size, 4), dtype=np.uint8)
    upper[:, :3], upper[:, 3] = packed.low_bytes.T, high
    return _symmetric(upper.reshape(-1).view("<f4").astype(np.float32), n)


def unpack_float16_symmetric(upper: np.ndarray, exact_index: np.ndarray, exact_value: np.ndarray,
                             n: int) -> np.ndarray:
    """The matrix of weights files written from 2026-11-30 to 2026-12-02, which stored it lossily:
    float16 upper triangle with its largest 2% of entries in float32. Read so those files still load."""
    if len(upper) != n * (n + 1) // 2:
        raise ValueError(f"{len(upper)} values are not the upper triangle of a {n} x {n} matrix")
    values = upper.astype(np.float32)
    values[exact_index] = exact_value
    return _symmetric(values, n)


def matrix_sha256(matrix: np.ndarray) -> str:
    """The sha256 of a float32 matrix's little-endian bytes, row by row. A card records it of the run's ZCA
    so that a test on any machine can tell the shipped, packed matrix is that one bit for bit (comparing
    predictions cannot: bf16 convolutions round differently on other CPUs)."""
    return hashlib.sha256(np.ascontiguousarray(matrix, dtype="<f4").tobytes()).hexdigest()


def _symmetric(upper: np.ndarray, n: int) -> np.ndarray:
    matrix = np.empty((n, n), dtype=np.float32)
    rows, cols = np.triu_indices(n)
    matrix[rows, cols] = upper
    matrix[cols, rows] = upper
    return matrix


def zca_tensors(params: ZcaParams) -> dict[str, np.ndarray]:
    """What a weights file stores of a fitted ZCA: its mean and its matrix, packed."""
    packed = pack_symmetric(params.matrix)
    return {"zca_mean": params.mean, "zca_low_bytes": packed.low_bytes, "zca_high_bytes": packed.high_bytes}


def zca_from_tensors(tensors: dict[str, np.ndarray]) -> ZcaParams:
    """zca_tensors' inverse; also reads the two older layouts (whole float32 matrix; float16-packed).
    Raises KeyError or ValueError for tensors that hold none of them."""
    mean = tensors["zca_mean"]
    n = len(mean)
    if "zca_matrix" in tensors:
        matrix = tensors["zca_matrix"]
    elif "zca_upper" in tensors:
        matrix = unpack_float16_symmetric(tensors["zca_upper"], tensors["zca_exact_index"],
                                          tensors["zca_exact_value"], n)
    else:
        matrix = unpack_symmetric(PackedSymmetric(tensors["zca_low_bytes"], tensors["zca_high_bytes"]), n)
    return ZcaParams(mean, matrix)


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
