"""The network: pre-activation ResNet with a CAM head (see models/resnet.py)."""
from .resnet import (  # noqa: F401
    AMP_MODES, DEPTHS, EARLY_LAYERS, FC_B, FC_W, FEATURES, FINAL_STRIDES, IMAGENET_MEAN_BGR, IMAGENET_STD_BGR,
    INPUT_IMAGE, INPUT_LABEL, LOGITS, NONFINITE_LOSS, WRONG_TOP1, WRONG_TOP5, CAMModel, backbone, cam_head, param_count, scaled_widths, weight_decay_cost,
)
