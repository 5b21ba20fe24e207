"""The localisation measured while a run trains, on the validation split, with evaluate.py's pipeline.

:class:`LocalizationInferencer` joins train.py's validation :class:`tensorpack.callbacks.InferenceRunner`:
the same forward pass that gives the validation error gives the CAMs, and evaluate.py's CAM pipeline
(:func:`evaluation.runner.evaluate_images`, :class:`cam.BoxEvaluator`) turns them into GT-known Loc and
Top-1 Loc of the first ``--loc-images`` validation images under evaluate.py's default protocol at the
paper's CAM threshold; InferenceRunner puts them in stats.json and TensorBoard.  train.py hands it to
``training.trainer`` (training/ imports no evaluation/).
"""

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)

from tensorpack.callbacks import Inferencer

from cam import CAM_THRESHOLD, NAMES, PROTOCOLS, BoxEvaluator
from evaluation.runner import evaluate_images
from models.resnet import FC_B, FC_W, FEATURES, LOGITS

PROTOCOL = NAMES[0]  # "authors": evaluate.py's default --protocol (SN-ResNet's evaluation)
# the stats.json / TensorBoard names of the localisation metrics (val-error-top1's style)
LOC_STATS = {"gt_known_loc": "val-gt-known-loc", "top1_loc": "val-top1-loc"}


class LocalizationInferencer(Inferencer):
    """GT-known Loc and Top-1 Loc (percent) of the first ``images`` images of ``split``, fed to
    InferenceRunner in file order.

    ``split``: the loaded validation :class:`dataflow.tinyimagenet.Split` whose ``build_eval_dataflow`` the runner
    iterates (images ``(N, H, W, 3)`` uint8 BGR, labels ``(N,)``, boxes ``(N, 4)`` int inclusive
    ``[x0, y0, x1, y1]``): batch after batch, in order, so image ``i`` of the stream is ``split``'s ``i``.
    """

    def __init__(self, split, images, protocol=PROTOCOL, threshold=CAM_THRESHOLD):
        self.split, self.protocol, self.threshold = split, protocol, threshold
        self.limit = min(images, len(split.labels))

    def _before_inference(self):
        self.evaluators = {self.protocol: BoxEvaluator(PROTOCOLS[self.protocol], [self.threshold])}
        self.seen = 0

    def _get_fetches(self):
        return [FEATURES, FC_W, FC_B, LOGITS]

    def _on_fetches(self, outputs):
        n, start = len(outputs[0]), self.seen
        if start + n > len(self.split.labels):
            raise RuntimeError(
                f"the validation stream gave more than the {len(self.split.labels)} images of the split"
            )
        self.seen += n
        n = min(n, self.limit - start)
        if n > 0:  # the forward pass is done: evaluate_images' "predictor" hands back its outputs
            evaluate_images(
                lambda _: [o[:n] for o in outputs[:1]] + outputs[1:3] + [outputs[3][:n]],
                self.split.images[start : start + n],
                self.split.labels[start : start + n],
                self.split.boxes[start : start + n],
                self.evaluators,
                batch_size=n,
            )

    def _after_inference(self):
        summary = self.evaluators[self.protocol].summary(self.threshold)
        return {name: summary[metric] for metric, name in LOC_STATS.items()}
