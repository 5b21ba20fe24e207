"""The layer plan of the backbone, without TensorFlow: blocks per group, group widths, the stem, and
the group strides of each final stride.

``models/resnet.py`` builds the network from it; ``runrecord/settings.py`` takes the ``--depth`` and
``--final-stride`` choices from it and ``runrecord/cost.py`` counts the FLOPs of each layer with it, so
a new depth is one line here (docs/extending.md, "A new backbone depth").
"""

# depth -> blocks per group (paper sec. 3: ResNet18 and ResNet34; He et al. 2016 table 1)
DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
BASE_WIDTHS = (64, 128, 256, 512)  # He et al. 2016 table 1: widths 64/128/256/512
# junsukchoe/SN-ResNet codes/train_resnet_tiny.py: 7x7 stem at stride 1, no max-pool
STEM_KERNEL = 7
# final stride -> the stride of each group
FINAL_STRIDES = {
    # SN-ResNet codes/train_resnet_tiny.py: last group at stride 1 (a 16x16 map from 64x64)
    4: (1, 2, 2, 1),
    # not the paper's: the usual last-group stride 2 (an 8x8 map from 64x64)
    8: (1, 2, 2, 2),
}
