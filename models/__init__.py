"""The network. Import from the module that owns a name:

* :mod:`models.resnet`: the pre-activation ResNet, the CAM head, ``CAMModel`` (the one ``ModelDesc``),
  the tensor names, the input normalisation;
* :mod:`models.loss`: weight decay, the finite-loss check and the fp16 loss scale;
* :mod:`models.plan`: the layer plan (blocks, widths, stem, strides), without TensorFlow.

``models.resnet`` and ``models.loss`` import tensorpack (hence TensorFlow); ``models.plan`` does not, so
the settings and the table scripts read the depths from it without TensorFlow.
"""
