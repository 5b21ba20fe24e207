"""Training-time augmentations: the paper's GoogLeNet Resize and Hide-and-Seek, SN-ResNet's jitter and flip.

Import from the owning module: ``augment.registry`` (the methods' names, read without importing
anything of tensorpack: the settings and the table scripts use it), ``augment.methods``
(``augmentors_for(method)``, ``seed_augmentors``, the colour jitter), ``augment.googlenet_resize``,
``augment.hide_and_seek``.  All augmentors are tensorpack ``imgaug.ImageAugmentor`` objects on HxWx3
uint8 BGR images that keep the image shape and dtype.  No TensorFlow graph code here.
A new method is one new module (docs/extending.md).
"""
