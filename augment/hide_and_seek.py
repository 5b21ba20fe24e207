"""Hide-and-Seek (HnS): hide random cells of a grid laid over the image.

Singh & Lee, ICCV 2017, as their code does it (docs/sources.md, "Hide-and-Seek fill"):
for each image draw one patch size uniformly from a list (0 = no hiding), lay a
grid of that step from the top-left corner (the last row and column of cells
may be cut short), hide each cell independently with probability 0.5, and give
hidden pixels the dataset mean.  Paper sec. 3 uses the "mixed" grids 0x0, 4x4,
8x8, 16x16 on 64x64 images, i.e. patch sizes {0, 16, 8, 4} pixels (docs/sources.md).

Images are HxWxC uint8 **BGR**; the fill is a per-channel BGR triple of floats
rounded to uint8.  Cells are square, ``p x p`` pixels; on an H x W image there
are ``ceil(H / p)`` rows and ``ceil(W / p)`` columns of cells.

Seeding: draws come only from ``self.rng`` (tensorpack convention); see
:func:`augment.methods.seed_augmentors`.
"""

import functools
import numbers

import cv2
import numpy as np

import tf_env  # noqa: F401  (before tensorpack: see tf_env.py)
from tensorpack.dataflow import imgaug
from tensorpack.dataflow.imgaug.transform import Transform

from .registry import Method

# paper sec. 3 "mixed" grids 0x0, 4x4, 8x8, 16x16 of a 64x64 image = these patch sizes (docs/sources.md)
PATCH_SIZES = (0, 16, 8, 4)
# docs/sources.md: Singh & Lee's code hides each cell with probability 0.5
HIDE_PROB = 0.5


def sample_hidden_cells(h, w, rng, patch_sizes=PATCH_SIZES, hide_prob=HIDE_PROB):
    """Draw the HnS grid for an ``h x w`` image.

    Draws, from ``rng`` and in this order: the patch-size index
    (``rng.randint(len(patch_sizes))``), then, unless the patch is 0, one
    uniform number per cell (row-major) and a cell is hidden when it is
    ``< hide_prob`` (so 0 hides nothing and 1 hides every cell).

    Returns:
        ``(patch, cells)``: ``patch`` the chosen size in pixels (int, 0 = no
        hiding) and ``cells`` a bool array of shape
        ``(ceil(h / patch), ceil(w / patch))``, True = hidden (``None`` when
        ``patch`` is 0).
    """
    patch = int(patch_sizes[rng.randint(len(patch_sizes))])
    if patch == 0:
        return 0, None
    rows, cols = -(-h // patch), -(-w // patch)
    return patch, rng.uniform(size=(rows, cols)) < hide_prob


def cells_to_mask(cells, patch, h, w):
    """Expand a ``(rows, cols)`` bool cell grid to an ``(h, w)`` pixel mask.

    Cell ``(i, j)`` covers rows ``[i*patch, min((i+1)*patch, h))`` and columns
    ``[j*patch, min((j+1)*patch, w))``: the grid starts at the top-left and the
    last row/column is cut short.  Returns bool, shape (h, w).
    """
    return np.repeat(np.repeat(cells, patch, axis=0), patch, axis=1)[:h, :w]


def fill_to_uint8(fill, channels=3):
    """A per-channel fill (floats, BGR) -> uint8 array of shape (channels,), rounded to nearest.

    Raises ValueError unless ``fill`` has ``channels`` finite entries in [0, 255].
    """
    arr = np.asarray(fill, dtype=np.float64).reshape(-1)
    if arr.shape != (channels,) or not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"fill must be {channels} values in [0, 255] (BGR), got {fill!r}")
    return np.rint(arr).astype(np.uint8)


@functools.lru_cache(maxsize=16)
def _constant_image(shape, fill_bytes):
    """A read-only ``shape`` uint8 image of one colour, cached: filling it costs more than the hiding."""
    img = np.empty(shape, np.uint8)
    img[...] = np.frombuffer(fill_bytes, np.uint8)
    img.flags.writeable = False
    return img


class HideTransform(Transform):
    """Paint the hidden cells of a grid with a constant colour (pixels only; coords unchanged)."""

    def __init__(self, patch, cells, fill_u8):
        super().__init__()
        self.patch, self.cells, self.fill_u8 = (
            patch,
            cells,
            fill_u8,
        )  # not _init(locals()): one per image

    def apply_image(self, img):
        """HxWxC uint8 -> a new HxWxC uint8 array (the input is never modified)."""
        if self.patch == 0 or not self.cells.any():
            return img
        h, w = img.shape[:2]
        if img.ndim != 3 or img.shape[2] != len(self.fill_u8):
            raise ValueError(
                f"HideAndSeek expects HxWx{len(self.fill_u8)} images, got shape {img.shape}"
            )
        mask = cells_to_mask(self.cells, self.patch, h, w).view(np.uint8)
        # cv2.copyTo with a uint8 mask is ~8x faster than boolean fancy assignment at 64x64
        filled = _constant_image(img.shape, self.fill_u8.tobytes())
        return cv2.copyTo(filled, mask, img.copy())

    def apply_coords(self, coords):
        return coords


class HideAndSeek(imgaug.ImageAugmentor):
    """HnS (Singh & Lee 2017; paper sec. 2-3; docs/sources.md): hide random grid cells of the image.

    Input and output: HxWxC uint8 BGR, same shape; any H, W (non-square, not
    divisible by the patch).  Not meant for test time.

    Args:
        patch_sizes: cell sizes in pixels, one drawn uniformly per image; 0 = no
            hiding (paper sec. 3 mixed grids on 64x64: (0, 16, 8, 4)).
        hide_prob: probability that each cell is hidden (docs/sources.md: 0.5).
        fill: BGR colour of hidden pixels, 3 floats rounded to uint8; required, no default:
            the training flow decides it (the training split's mean, Singh & Lee's choice;
            ``dataflow.builders.train_augmentors``).
    """

    def __init__(self, patch_sizes=PATCH_SIZES, hide_prob=HIDE_PROB, *, fill):
        patch_sizes = tuple(patch_sizes)
        if not patch_sizes or not all(
            isinstance(p, numbers.Integral) and p >= 0 for p in patch_sizes
        ):
            raise ValueError(
                f"patch_sizes must be a non-empty list of integers >= 0, got {patch_sizes}"
            )
        if not 0.0 <= float(hide_prob) <= 1.0:
            raise ValueError(f"hide_prob must be in [0, 1], got {hide_prob}")
        self._fill_u8 = fill_to_uint8(fill)
        super().__init__()
        self.patch_sizes = tuple(int(p) for p in patch_sizes)
        self.hide_prob = float(hide_prob)
        self.fill = tuple(float(v) for v in np.asarray(fill, dtype=np.float64).reshape(-1))

    def get_transform(self, img):
        """Draw a patch size and hidden cells for ``img`` (HxWxC); return a :class:`HideTransform`."""
        h, w = img.shape[:2]
        patch, cells = sample_hidden_cells(h, w, self.rng, self.patch_sizes, self.hide_prob)
        return HideTransform(patch, cells, self._fill_u8)


# train.py --aug hns: HideAndSeek(fill=the training split's BGR mean) (augment/registry.py reads this line)
HNS = Method(
    "hns", source="paper sec. 2-3", title="HnS", augmentor="HideAndSeek", fill=True, paper=2
)
