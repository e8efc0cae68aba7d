"""PSNR and SSIM (`bioconv.image_quality`, seed 004 Table IV): known answers worked out by hand, and
the vectorized SSIM against a direct loop over every window of Wang et al. (2004)'s definition."""
import numpy as np
import pytest

from bioconv import BioconvError
from bioconv import image_quality as iq


def test_psnr_known_answers():
    ref = np.zeros((2, 28, 28))
    img = ref.copy()
    img[0] += 0.1         # MSE 0.01: 10 log10(1 / 0.01) = 20 dB
    img[1, :14] = 1.0     # MSE 0.5: 10 log10(2) = 3.0103 dB
    assert iq.psnr(ref, img) == pytest.approx([20.0, 10 * np.log10(2)])
    assert iq.psnr(ref, img, data_range=2.0)[0] == pytest.approx(20.0 + 20 * np.log10(2))
    assert np.isinf(iq.psnr(ref, ref)).all()


def test_ssim_of_constant_images_is_the_luminance_term():
    # no variance anywhere: the structure term is C2 / C2 = 1, and SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.5, 0.25, (0.01 * 1.0) ** 2
    got = iq.ssim(np.full((28, 28), a), np.full((28, 28), b))
    assert got == pytest.approx([(2 * a * b + c1) / (a * a + b * b + c1)], rel=1e-12)
    assert iq.ssim_map(np.full((28, 28), a), np.full((28, 28), b)).shape == (1, 18, 18)


def test_ssim_equals_a_direct_loop_over_windows():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 1, 16, 14))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    g = np.exp(-(np.arange(11) - 5.0) ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    expected = []
    for a, b in zip(x[:, 0], y[:, 0]):
        vals = []
        for i in range(16 - 10):
            for j in range(14 - 10):
                pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
        expected.append(np.mean(vals))
    assert iq.ssim(x, y) == pytest.approx(expected, rel=1e-10)
    assert iq.ssim(x, x) == pytest.approx([1.0, 1.0])
    assert 0 < iq.mean_ssim(x, y) < 0.9


def test_bad_images_are_refused_by_name():
    with pytest.raises(BioconvError, match=r"ssim: images have shapes \(28, 28\) and \(28, 27\)"):
        iq.ssim(np.zeros((28, 28)), np.zeros((28, 27)))
    with pytest.raises(BioconvError, match="smaller than the 11 x 11 window"):
        iq.ssim(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(BioconvError, match="psnr: images hold NaN"):
        iq.psnr(np.zeros((4, 4)), np.full((4, 4), np.nan))
