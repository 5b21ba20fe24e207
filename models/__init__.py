"""The network: pre-activation ResNet with a CAM head (models/resnet.py) and what training adds
to its loss (models/loss.py)."""

from .loss import FP16_LOSS_SCALE, NONFINITE_GRADIENT, NONFINITE_LOSS, weight_decay_cost  # noqa: F401 (the package's names)
from .resnet import (  # noqa: F401 (the package's names)
    AMP_MODES,
    DEPTHS,
    EARLY_LAYERS,
    FC_B,
    FC_W,
    FEATURES,
    FINAL_STRIDES,
    IMAGENET_MEAN_BGR,
    IMAGENET_STD_BGR,
    INPUT_IMAGE,
    INPUT_LABEL,
    LOGITS,
    WRONG_TOP1,
    WRONG_TOP5,
    CAMModel,
    backbone,
    cam_head,
    normalization,
    param_count,
    scaled_widths,
)
