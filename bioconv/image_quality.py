"""Image-quality metrics for reconstructions (seed 004 Table IV): PSNR and SSIM.

No image library is among bioconv's dependencies (scikit-image is not installed in either
environment), so SSIM is implemented here after Wang, Bovik, Sheikh and Simoncelli (2004), "Image
quality assessment: from error visibility to structural similarity", IEEE TIP 13(4), as their
reference implementation (ssim_index.m) computes it:
- local statistics under an 11 x 11 circular-symmetric Gaussian window of standard deviation 1.5,
  normalized to sum 1 (`WINDOW`, `SIGMA`);
- means, variances and the covariance weighted by that window (population form, no N - 1);
- only windows that fit inside the image ("valid" filtering: an 18 x 18 map for a 28 x 28 digit);
- ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` with ``K1 = 0.01``, ``K2 = 0.03`` and ``L`` the data range (1
  for images in [0, 1]);
- the image's SSIM is the mean of its SSIM map. (The reference code also downsamples images larger
  than 256 pixels a side; MNIST digits are not.)
scikit-image's ``structural_similarity(x, y, data_range=1, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)`` is the same computation with a window truncated at 3.5 sigma (also
11 x 11), up to its sum normalization and border handling.

PSNR is ``10 log10(L^2 / MSE)`` per image (inf for a perfect reconstruction). Both are returned per
image; a data set's figure is their mean (`mean_psnr`, `mean_ssim`).
"""
from __future__ import annotations

import numpy as np

from .errors import BioconvError

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _images(a, b, where: str):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise BioconvError(f"{where}: images have shapes {a.shape} and {b.shape}; they must match")
    if a.ndim == 2:
        a, b = a[None], b[None]
    if a.ndim == 4 and a.shape[1] == 1:  # (N, 1, H, W): one channel
        a, b = a[:, 0], b[:, 0]
    if a.ndim != 3:
        raise BioconvError(f"{where}: images must be (H, W), (N, H, W) or (N, 1, H, W), got shape {a.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise BioconvError(f"{where}: images hold NaN or infinite values")
    return a, b


def psnr(reference, image, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio (dB) of each image against its reference: ``10 log10(L^2 / MSE)``."""
    a, b = _images(reference, image, "psnr")
    mse = ((a - b) ** 2).mean(axis=(1, 2))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """The 1-D factor of the normalized Gaussian window (the 2-D window is its outer product)."""
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``img`` (N, H, W) filtered with the separable window ``g`` x ``g``, valid positions only."""
    k = len(g)
    rows = np.lib.stride_tricks.sliding_window_view(img, k, axis=2) @ g        # (N, H, W-k+1)
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=1) @ g       # (N, H-k+1, W-k+1)


def ssim_map(reference, image, data_range: float = 1.0, size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """The SSIM map (N, H - size + 1, W - size + 1) of Wang et al. (2004); see the module docstring."""
    a, b = _images(reference, image, "ssim")
    if min(a.shape[1:]) < size:
        raise BioconvError(f"ssim: images of {a.shape[1]} x {a.shape[2]} pixels are smaller than the {size} x {size} window")
    g = gaussian_window(size, sigma)
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a ** 2
    var_b = _filter_valid(b * b, g) - mu_b ** 2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(reference, image, data_range: float = 1.0, size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """SSIM of each image against its reference: the mean of its `ssim_map`."""
    return ssim_map(reference, image, data_range, size, sigma).mean(axis=(1, 2))


def mean_psnr(reference, image, data_range: float = 1.0) -> float:
    return float(np.mean(psnr(reference, image, data_range)))


def mean_ssim(reference, image, data_range: float = 1.0) -> float:
    return float(np.mean(ssim(reference, image, data_range)))


__all__ = ["K1", "K2", "SIGMA", "WINDOW", "gaussian_window", "mean_psnr", "mean_ssim", "psnr", "ssim", "ssim_map"]
