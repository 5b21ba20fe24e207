"""The five augmentation settings of the paper's Table 1, as lists of tensorpack augmentors.

=================  ==========================================  ===================
name               augmentors, applied in this order           source
=================  ==========================================  ===================
``cam``            none (the CAM baseline)                     paper Table 1
``hns``            HideAndSeek                                 paper sec. 2-3
``gr``             GoogLeNetResize                             paper sec. 2
``hns_after_gr``   GoogLeNetResize, then HideAndSeek           paper sec. 3, facts.md
``gr_after_hns``   HideAndSeek, then GoogLeNetResize           paper sec. 3, facts.md
=================  ==========================================  ===================

No flip by default: the paper mentions none (the authors' code added a
horizontal flip and colour jitter with GR, facts.md); ``flip=True`` prepends a
random horizontal flip to every method, ``cam`` included.
"""
import numpy as np

import tf_env  # noqa: F401  (before tensorpack, INTERFACES.md)
from tensorpack.dataflow import imgaug

from .googlenet_resize import GoogLeNetResize
from .hide_and_seek import TINY_IMAGENET_MEAN_BGR, HideAndSeek

# INTERFACES.md: the method names, in the column order of the paper's Table 1
METHODS = ("cam", "hns", "gr", "hns_after_gr", "gr_after_hns")

_RECIPES = {
    "cam": (),
    "hns": ("hns",),
    "gr": ("gr",),
    "hns_after_gr": ("gr", "hns"),
    "gr_after_hns": ("hns", "gr"),
}


def augmentors_for(method, fill=None, *, flip=False):
    """The list of augmentors for a Table 1 method, to apply in list order.

    Args:
        method (str): one of :data:`METHODS`.
        fill: BGR fill of HideAndSeek (3 floats; default
            :data:`TINY_IMAGENET_MEAN_BGR`; the training flow passes the
            training split's mean).
        flip (bool): prepend ``imgaug.Flip(horiz=True)`` (not in the paper).

    Returns:
        list of ``imgaug.ImageAugmentor`` on HxWx3 uint8 BGR images, each
        keeping the image shape; empty for ``cam`` without flip.

    Raises:
        ValueError: unknown ``method``; the message lists the valid names.
    """
    if method not in _RECIPES:
        raise ValueError(f"unknown augmentation method {method!r}; valid methods: {', '.join(METHODS)}")
    fill = TINY_IMAGENET_MEAN_BGR if fill is None else fill
    make = {"gr": GoogLeNetResize, "hns": lambda: HideAndSeek(fill=fill)}
    augs = [imgaug.Flip(horiz=True)] if flip else []
    return augs + [make[step]() for step in _RECIPES[method]]


def seed_augmentors(augmentors, seed):
    """Give each augmentor its own deterministic ``np.random.RandomState``.

    Augmentor ``i`` gets a stream from ``np.random.SeedSequence(seed).spawn``,
    so two augmentors in one list do not share draws (tensorpack's
    ``fix_rng_seed`` would give them all the same seed).  Call this *after*
    any ``reset_state()``: tensorpack's ``reset_state`` (run by
    ``AugmentImageComponent.reset_state`` and automatically after a fork)
    replaces ``rng`` again.  Returns ``augmentors``.
    """
    children = np.random.SeedSequence(int(seed)).spawn(len(augmentors))
    for aug, child in zip(augmentors, children):
        aug.rng = np.random.RandomState(np.random.MT19937(child))
    return augmentors
