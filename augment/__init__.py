"""Training-time augmentations of the paper (sec. 2-3): GoogLeNet Resize and Hide-and-Seek.

``from augment import GoogLeNetResize, HideAndSeek, augmentors_for, METHODS``.
All are tensorpack ``imgaug.ImageAugmentor`` objects on HxWx3 uint8 BGR images
that keep the image shape.  No TensorFlow graph code here.
"""
from .googlenet_resize import GoogLeNetResize, fallback_box, sample_crop_box
from .hide_and_seek import HideAndSeek, cells_to_mask, sample_hidden_cells
from .methods import METHODS, augmentor_list, augmentors_for, colour_jitter, seed_augmentors

__all__ = ["GoogLeNetResize", "HideAndSeek", "METHODS", "augmentor_list", "augmentors_for", "colour_jitter",
           "seed_augmentors", "sample_crop_box", "fallback_box", "sample_hidden_cells", "cells_to_mask"]
