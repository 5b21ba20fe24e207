"""The augmentors of a method (``augment/registry.py``), as one tensorpack ``imgaug.AugmentorList``.

The paper's Table 1 methods, declared at the end of their modules (``cam`` and the two orders of
the composite here):

=================  ==========================================  ===================
name               augmentors, applied in this order           source
=================  ==========================================  ===================
``cam``            none (the CAM baseline)                     paper Table 1
``hns``            HideAndSeek                                 paper sec. 2-3
``gr``             GoogLeNetResize                             paper sec. 2
``hns_after_gr``   GoogLeNetResize, then HideAndSeek           paper sec. 3
``gr_after_hns``   HideAndSeek, then GoogLeNetResize           paper sec. 3
=================  ==========================================  ===================

Another method is one more module of ``augment/`` (docs/extending.md).

Two extras the paper does not mention, each off by default (docs/sources.md),
come AFTER the method's augmentors, in the order of
SN-ResNet ``codes/utils.py`` ``fbresnet_augmentor`` (GR, then the colour
jitter, then the flip):

* ``jitter=True``: :func:`colour_jitter`, SN-ResNet's colour jitter;
* ``flip=True``: ``imgaug.Flip(horiz=True)``, a horizontal flip with probability 0.5.

SN-ResNet has no Hide-and-Seek in its augmentor list, so "after GR" is read as
"after the method's augmentors": the jitter and the flip also come after HnS.
"""

import importlib

import numpy as np

import tf_env  # noqa: F401  (before tensorpack: see tf_env.py)
from tensorpack.dataflow import imgaug

from . import registry
from .registry import Method

# the paper's methods without an augmentor of their own (augment/registry.py reads these lines)
CAM = Method("cam", source="paper Table 1", title="CAM", steps=(), paper=1)
HNS_AFTER_GR = Method(
    "hns_after_gr", source="paper sec. 3", title="HnS after GR", steps=("gr", "hns"), paper=4
)
GR_AFTER_HNS = Method(
    "gr_after_hns", source="paper sec. 3", title="GR after HnS", steps=("hns", "gr"), paper=5
)

# Colour jitter constants: SN-ResNet codes/utils.py fbresnet_augmentor, the same as tensorpack
# examples/ImageNetModels/imagenet_utils.py fbresnet_augmentor (2018), from fb.resnet.torch.
BRIGHTNESS_RANGE = (0.6, 1.4)
CONTRAST_RANGE = (0.6, 1.4)
SATURATION_ALPHA = 0.4
LIGHTING_STD = 0.1
# fb.resnet.torch datasets/imagenet.lua pca, RGB order, eigenvalues of pixel values in [0, 1]
_PCA_EIGVAL_RGB = (0.2175, 0.0188, 0.0045)
_PCA_EIGVEC_RGB = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
# BGR as SN-ResNet writes them: eigenvalues reversed and scaled to 0-255, eigenvector matrix
# reversed in both rows (channels) and columns (so column k still pairs with eigenvalue k).
LIGHTING_EIGVAL_BGR = np.asarray(_PCA_EIGVAL_RGB[::-1]) * 255.0
LIGHTING_EIGVEC_BGR = np.array(_PCA_EIGVEC_RGB, dtype="float32")[::-1, ::-1]


class _ReprOnce:
    """Mixin for a tensorpack augmentor: compute its ``repr`` once.

    tensorpack 0.11's ``PhotometricAugmentor.get_transform`` names every transform it makes with
    ``str(self)``, which inspects the constructor and pretty-prints every argument: about three
    quarters of the colour jitter's time per 64x64 image.  The augmentation itself is tensorpack's.
    """

    def __str__(self):
        if "_repr_once" not in self.__dict__:
            self._repr_once = super().__str__()
        return self._repr_once

    __repr__ = __str__


class _BrightnessScale(_ReprOnce, imgaug.BrightnessScale):
    pass


class _Contrast(_ReprOnce, imgaug.Contrast):
    pass


class _Saturation(_ReprOnce, imgaug.Saturation):
    pass


class _Lighting(_ReprOnce, imgaug.Lighting):
    pass


def colour_jitter():
    """SN-ResNet's colour jitter: brightness, contrast, saturation and PCA lighting in a random order.

    tensorpack's own augmentors, with the arguments of SN-ResNet ``codes/utils.py``
    ``fbresnet_augmentor``: ``RandomOrderAug([BrightnessScale((0.6, 1.4), clip=False),
    Contrast((0.6, 1.4), clip=False), Saturation(0.4, rgb=False), Lighting(0.1, eigval, eigvec)])``
    with fb.resnet.torch's eigenvalues / eigenvectors in BGR order.  On HxWx3 uint8 BGR input each
    step rounds down and clips to uint8 (tensorpack's augmentors keep the input dtype), as in 2018.
    Each is tensorpack's class with its ``repr`` computed once (``_ReprOnce``, for speed only).
    """
    return imgaug.RandomOrderAug(
        [
            _BrightnessScale(BRIGHTNESS_RANGE, clip=False),
            _Contrast(CONTRAST_RANGE, clip=False),
            _Saturation(SATURATION_ALPHA, rgb=False),
            _Lighting(LIGHTING_STD, eigval=LIGHTING_EIGVAL_BGR, eigvec=LIGHTING_EIGVEC_BGR),
        ]
    )


def augmentor_list(method, fill, *, flip=False, jitter=False):
    """The augmentors of a method, in application order (see the module table).

    Args:
        method (str): one of ``augment.registry.names()``.
        fill: BGR fill of HideAndSeek (and of any method declared with ``fill=True``), 3 floats in
            [0, 255].  The training flow decides it (``dataflow.builders.train_augmentors``: the
            training split's mean); it is required for ``hns``, ``hns_after_gr`` and ``gr_after_hns``
            and ignored otherwise.
        flip (bool): append ``imgaug.Flip(horiz=True)`` (not in the paper; SN-ResNet).
        jitter (bool): append :func:`colour_jitter` before the flip (not in the paper; SN-ResNet).

    Returns:
        list of ``imgaug.ImageAugmentor`` on HxWx3 uint8 BGR images, each keeping the shape and
        the dtype; empty for ``cam`` without extras.

    Raises:
        ValueError: unknown ``method`` (the message lists the valid names), or no ``fill`` for HnS.
    """
    if method not in registry.methods():
        raise ValueError(
            f"unknown augmentation method {method!r}; valid methods: {', '.join(registry.names())}"
        )
    steps = registry.steps(method)
    if fill is None and any(s.fill for s in steps):
        raise ValueError(
            f"method {method!r} hides pixels: give its BGR fill (the training split's mean)"
        )
    augs = []
    for s in steps:  # each declaring module is imported here, and only here
        make = getattr(importlib.import_module(s.module), s.augmentor)
        augs.append(make(fill=fill) if s.fill else make())
    if jitter:
        augs.append(colour_jitter())
    if flip:
        augs.append(imgaug.Flip(horiz=True))
    return augs


def augmentors_for(method, fill, *, flip=False, jitter=False):
    """The method's augmentors as one ``imgaug.AugmentorList`` (``.augment(img)`` applies them in order).

    Arguments as :func:`augmentor_list`; ``.augmentors`` is that list.
    """
    return imgaug.AugmentorList(augmentor_list(method, fill, flip=flip, jitter=jitter))


def _walk(augmentors):
    """Every augmentor of ``augmentors``, containers first, then their members, depth first."""
    for aug in augmentors:
        yield aug
        if isinstance(aug, imgaug.AugmentorList):
            yield from _walk(aug.augmentors)
        elif isinstance(aug, imgaug.RandomOrderAug):
            yield from _walk(aug.aug_lists)


def seed_augmentors(augmentors, seed):
    """Give each augmentor, nested ones included, its own deterministic ``np.random.RandomState``.

    ``augmentors`` is one augmentor (e.g. an ``AugmentorList``) or a list of them; ``seed`` an int
    or a ``np.random.SeedSequence`` (left unchanged).  The i-th augmentor in depth-first order
    (the members of an ``AugmentorList`` or ``RandomOrderAug`` after the container) gets the i-th
    child of the seed's sequence (what ``SeedSequence(seed).spawn`` gives), so no two share
    draws (tensorpack's ``fix_rng_seed`` would give them all one seed).  Call this
    *after* any ``reset_state()``, which replaces ``rng`` again (tensorpack also calls it after a
    fork).  Returns ``augmentors``.
    """
    flat = list(_walk(augmentors if isinstance(augmentors, (list, tuple)) else [augmentors]))
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    for i, aug in enumerate(flat):
        child = np.random.SeedSequence(
            seq.entropy, spawn_key=seq.spawn_key + (i,), pool_size=seq.pool_size
        )
        aug.rng = np.random.RandomState(np.random.MT19937(child))
    return augmentors
