"""The paper's preprocessing (GCN, ZCA, LCN) and the batch augmentation, as pure maths."""

import dataclasses

import numpy as np
import pytest
import torch

from nin.data.augment import random_crop, random_cutout, random_flip, random_translate
from nin.data.preprocess import (GCN_SCALE, ZCA_FILTER_BIAS, apply_zca, fit_zca, gaussian_kernel,
                                 global_contrast_normalize, local_contrast_normalize)


def test_gcn_rows_have_zero_mean_and_norm_55():
    x = np.random.default_rng(0).integers(0, 256, (50, 3072)).astype(np.float32)
    out = global_contrast_normalize(x)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), GCN_SCALE, rtol=1e-5)


def test_gcn_flat_image_stays_finite():
    out = global_contrast_normalize(np.full((2, 12), 7.0))
    assert np.isfinite(out).all() and (out == 0).all()


def correlated(n, d, seed=0):
    """Data with a known spectrum: standard deviations 3 to 20 along random orthogonal axes."""
    rng = np.random.default_rng(seed)
    axes, _ = np.linalg.qr(rng.normal(size=(d, d)))
    mixing = rng.uniform(3, 20, size=d)[:, None] * axes.T
    return (rng.normal(size=(n, d)) @ mixing + rng.normal(size=d) * 10).astype(np.float32)


def test_zca_whitens_up_to_the_regulariser():
    x = correlated(20_000, 24)
    params = fit_zca(x)
    white = apply_zca(x, params).astype(np.float64)
    covariance = np.cov(white, rowvar=False, bias=True)
    # With C the data covariance, the whitened covariance is C (C + 0.1 I)^-1, not exactly I.
    c = np.cov(x.astype(np.float64), rowvar=False, bias=True)
    expected = c @ np.linalg.inv(c + ZCA_FILTER_BIAS * np.eye(24))
    np.testing.assert_allclose(covariance, expected, atol=2e-3)
    # These data have variances far above 0.1, so that is close to the identity.
    np.testing.assert_allclose(covariance, np.eye(24), atol=0.02)
    np.testing.assert_allclose(white.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(params.matrix, params.matrix.T, atol=1e-5)


def test_zca_regulariser_shrinks_low_variance_directions():
    x = correlated(5_000, 8) * 0.03   # variances 0.008 to 0.36, comparable to the 0.1 regulariser
    white = apply_zca(x, fit_zca(x))
    assert np.cov(white, rowvar=False).trace() < 8 * 0.9


def test_zca_fit_on_train_applies_to_other_data():
    x = correlated(8000, 10)
    train, held_out = x[:6000], x[6000:]
    params = fit_zca(train)
    out = apply_zca(held_out, params)
    # the training split's mean and matrix, not statistics of the held-out images themselves
    np.testing.assert_allclose(out, (held_out - params.mean) @ params.matrix, rtol=1e-4, atol=1e-4)
    assert not np.allclose(params.mean, held_out.mean(axis=0), atol=1e-3)
    # held-out images of the same distribution come out white too: the sampling error of a covariance over
    # 2,000 rows is about 0.02, while the input's standard deviations are 3 to 20 (an identity map fails here)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.eye(10), atol=0.1)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=0.1)


def test_gcn_and_zca_fit_do_not_depend_on_the_chunk_size():
    # Both work through the rows in chunks to bound memory; the chunking must not show.
    x = correlated(1_000, 16) + 100
    np.testing.assert_array_equal(global_contrast_normalize(x, chunk=64), global_contrast_normalize(x, chunk=1_000))
    whole, chunked = fit_zca(x, chunk=1_000), fit_zca(x, chunk=64)
    np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-6)
    np.testing.assert_allclose(chunked.matrix, whole.matrix, rtol=1e-4, atol=1e-6)


def test_gaussian_kernel():
    k = gaussian_kernel(7, 2.0)
    assert k.shape == (7, 7) and abs(k.sum() - 1) < 1e-6 and k.argmax() == 24
    np.testing.assert_allclose(k, k.T)


def test_lcn_is_finite_and_locally_centred():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 3, 32, 32)).astype(np.float32)
    out = local_contrast_normalize(x)
    assert out.shape == x.shape and np.isfinite(out).all()
    inner = (slice(None), slice(None), slice(8, 24), slice(8, 24))   # away from the zero-padded borders
    # Centred locally: a bright offset plus a strong gradient across the image is removed.
    ramp = np.arange(32, dtype=np.float32) * 8.0
    shifted = local_contrast_normalize(x + 500.0 + ramp)
    assert abs(shifted[inner].mean()) < 0.05 and 0.3 < shifted[inner].std() < 3
    # Normalised: multiplying an image by a constant changes nothing.
    np.testing.assert_allclose(local_contrast_normalize(3.0 * x), out, rtol=1e-4, atol=1e-4)
    # The Gaussian-weighted local mean of a smooth ramp is the ramp itself, so the output is ~0.
    ramp = np.broadcast_to(np.arange(32, dtype=np.float32), (1, 1, 32, 32)).copy()
    assert np.abs(local_contrast_normalize(ramp)[0, 0, 8:24, 8:24]).max() < 1e-3


def test_lcn_of_blank_image_is_zero():
    out = local_contrast_normalize(np.zeros((1, 3, 32, 32), np.float32))
    assert np.isfinite(out).all() and (out == 0).all()


def test_translation_moves_content_and_fills_zeros():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    out = random_translate(x, 2)
    assert out.shape == x.shape
    assert (out.sum(dim=(1, 2, 3)) == 1).all()            # the one bright pixel always stays inside
    positions = out[:, 0].flatten(1).argmax(dim=1)
    rows, cols = positions // 9, positions % 9
    assert rows.min() == 2 and rows.max() == 6 and cols.min() == 2 and cols.max() == 6
    assert len(set(positions.tolist())) > 10                 # different images get different shifts


def test_flip_mirrors_about_half():
    torch.manual_seed(0)
    x = torch.arange(8.0).view(1, 1, 1, 8).repeat(200, 1, 1, 1)
    out = random_flip(x)
    flipped = (out[:, 0, 0, 0] == 7).sum().item()
    assert 60 < flipped < 140
    assert all(torch.equal(o, x[0]) or torch.equal(o, x[0].flip(2)) for o in out)


def test_random_crop_takes_a_whole_window_of_each_image_at_its_own_place():
    torch.manual_seed(0)
    x = torch.arange(64 * 36, dtype=torch.float32).view(64, 1, 6, 6) % 36 + 100 * torch.arange(64).view(64, 1, 1, 1)
    out = random_crop(x, 4)
    assert out.shape == (64, 1, 4, 4)
    corners = []
    for i in range(64):
        top_left = int(out[i, 0, 0, 0] - 100 * i)
        r, c = divmod(top_left, 6)
        assert 0 <= r <= 2 and 0 <= c <= 2
        assert torch.equal(out[i, 0], x[i, 0, r:r + 4, c:c + 4])   # a window, not a shuffle of pixels
        corners.append((r, c))
    assert len(set(corners)) > 5                                 # each image its own offset
    assert random_crop(x, 6) is x                                # a crop the size of the image is the image


def test_cutout_zeroes_one_square_per_image_clipped_only_by_the_border():
    torch.manual_seed(0)
    x = torch.rand(400, 3, 8, 8) + 1.0                        # no pixel is zero before
    out = random_cutout(x, 4)
    holes = out == 0
    assert torch.equal(holes, holes[:, :1].expand_as(holes))   # the same hole in every channel
    assert torch.equal(out[~holes], x[~holes])                 # the rest is untouched
    places = set()
    for hole in holes[:, 0]:
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert hole.sum() == len(rows) * len(cols)             # one rectangle...
        assert torch.equal(rows, torch.arange(rows[0], rows[-1] + 1))
        assert torch.equal(cols, torch.arange(cols[0], cols[-1] + 1))
        for side in (rows, cols):                               # ...a 4 x 4 square, cut short only at an edge
            assert len(side) == 4 or (len(side) < 4 and (side[0] == 0 or side[-1] == 7))
        places.add((int(rows[0]), int(cols[0]), len(rows), len(cols)))
    assert holes[:, 0].any(0).all()                             # over 400 images every pixel is hit, corners too
    assert len(places) > 30                                     # each image its own place
    assert random_cutout(x, 0) is x


def test_a_symmetric_matrix_packs_losslessly_to_its_upper_triangle_and_back():
    from nin.data.preprocess import pack_symmetric, unpack_symmetric

    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 40)).astype(np.float32)
    matrix = a + a.T
    matrix[3, 5] = matrix[5, 3] = 1e-30    # a value float16 would lose
    packed = pack_symmetric(matrix)
    assert packed.low_bytes.shape == (3, 820) and packed.low_bytes.dtype == np.uint8
    restored = unpack_symmetric(packed, 40)
    assert restored.dtype == np.float32 and np.array_equal(restored.view(np.uint32), matrix.view(np.uint32))
    with pytest.raises(ValueError, match="upper triangle of a 41 x 41"):
        unpack_symmetric(packed, 41)
    with pytest.raises(ValueError, match="do not decompress"):
        unpack_symmetric(dataclasses.replace(packed, high_bytes=packed.high_bytes[:-4]), 40)


def test_a_zca_of_real_image_statistics_packs_to_under_half_its_size():
    """The sign-and-exponent bytes of a real whitening matrix compress; that is what keeps a CIFAR file small."""
    from nin.data.preprocess import fit_zca, global_contrast_normalize, zca_from_tensors, zca_tensors

    rng = np.random.default_rng(1)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(600, 16, 16)), axis=1), axis=2)   # correlated like pixels
    params = fit_zca(global_contrast_normalize(smooth.reshape(600, -1)))
    tensors = zca_tensors(params)
    assert sum(t.nbytes for t in tensors.values()) < 0.5 * params.matrix.nbytes
    assert np.array_equal(zca_from_tensors(tensors).matrix, params.matrix)


def test_weights_files_with_the_older_float16_packing_still_load():
    from nin.data.preprocess import zca_from_tensors

    matrix = np.array([[2.0, 0.5], [0.5, 3.0]], dtype=np.float32)
    old = {"zca_mean": np.zeros(2, np.float32), "zca_upper": np.array([2.0, 0.5, 3.0], np.float16),
           "zca_exact_index": np.array([2], np.int32), "zca_exact_value": np.array([3.0], np.float32)}
    assert np.array_equal(zca_from_tensors(old).matrix, matrix)
