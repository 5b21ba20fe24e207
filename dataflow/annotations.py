"""The annotations of a Tiny ImageNet split, read and checked without decoding a pixel (numpy only).

Layout (the tiny-imagenet-200 download)::

    <root>/wnids.txt                               class order: label k = line k
    <root>/train/<wnid>/images/<wnid>_<i>.JPEG
    <root>/train/<wnid>/<wnid>_boxes.txt           file  x0 y0 x1 y1
    <root>/val/images/val_<i>.JPEG
    <root>/val/val_annotations.txt                 file  wnid  x0 y0 x1 y1

Text files are read as UTF-8; a byte-order mark (BOM) at the start of a file,
which some Windows editors add, is dropped (Python's "utf-8-sig"): it is an
encoding marker, not part of the first wnid or file name, so nothing is
guessed by removing it.

Bad input raises :class:`dataflow.DataError`, naming the file (and line).
"""

import errno
import os
from dataclasses import dataclass

import numpy as np

from dataflow import DataError

SPLITS = ("train", "val")
MAX_COORD = 2**31 - 1  # boxes are int32


@dataclass
class Annotations:
    """A split's annotations, in annotation order.

    files:  N paths relative to the root, e.g. "val/images/val_0.JPEG".
    labels: (N,) int32, the line of the image's wnid in wnids.txt.
    boxes:  (N, 4) int32 [x0, y0, x1, y1], max inclusive, exactly as annotated (not clipped).
    wnids:  class order (wnids.txt).
    lines:  N strings "annotation file:line" naming where each image is annotated.
    """

    files: list
    labels: np.ndarray
    boxes: np.ndarray
    wnids: list
    lines: list


def check_root(root):
    """Raise DataError unless ``root`` is a folder; a file or a missing path is named as such."""
    if os.path.isdir(root):
        return
    what = "is a file, not a folder" if os.path.exists(root) else "no such directory"
    raise DataError(f"{root}: {what} (expected the Tiny ImageNet root, with wnids.txt)")


def _read_lines(path):
    """[(line number from 1, fields)] of the non-blank lines of a text file; a leading BOM is dropped."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        return [(n, line.split()) for n, line in enumerate(f, 1) if line.strip()]


def read_wnids(root):
    """The class order: the wnids of ``<root>/wnids.txt``, one a line, no duplicates."""
    path = os.path.join(root, "wnids.txt")
    wnids, seen = [], {}
    for n, fields in _read_lines(path):
        if len(fields) != 1:
            raise DataError(f"{path}:{n}: expected one wnid, got {' '.join(fields)!r}")
        if fields[0] in seen:
            raise DataError(f"{path}:{n}: wnid {fields[0]} repeats line {seen[fields[0]]}")
        seen[fields[0]] = n
        wnids.append(fields[0])
    if not wnids:
        raise DataError(f"{path}: no classes")
    return wnids


def _parse_box(fields, where):
    try:
        box = [int(x) for x in fields]
    except ValueError:
        raise DataError(f"{where}: box {' '.join(fields)!r} is not four integers") from None
    if not (0 <= box[0] <= box[2] and 0 <= box[1] <= box[3]):
        raise DataError(
            f"{where}: box {box} is not [x0, y0, x1, y1] with 0 <= x0 <= x1 and 0 <= y0 <= y1"
        )
    if max(box) > MAX_COORD:  # the boxes are int32 arrays
        raise DataError(
            f"{where}: box {box} has a coordinate beyond {MAX_COORD}, no image is that large"
        )
    return box


def _check_against_disk(folder, ann, group):
    """Every annotated image of ``group`` [(name, "file:line")] exists in ``folder``, every image there is annotated."""
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: no such directory")
    on_disk = set(os.listdir(folder))
    seen = {}
    for name, where in group:
        if name in seen:
            raise DataError(f"{where}: {name} is annotated again (first at {seen[name]})")
        seen[name] = where
        if name not in on_disk:
            raise DataError(f"{where}: image {os.path.join(folder, name)} does not exist")
    # a hidden file nobody annotated is not an image (.DS_Store); an annotated one is
    unannotated = sorted(n for n in on_disk - set(seen) if not n.startswith("."))
    if unannotated:
        more = f" (nor do {len(unannotated) - 1} more)" if len(unannotated) > 1 else ""
        raise DataError(f"{os.path.join(folder, unannotated[0])}: image has no line in {ann}{more}")


def _records(root, split, wnids):
    """[(relative image path, label, box, "annotation file:line")] in annotation order, checked against the disk."""
    label_of = {w: k for k, w in enumerate(wnids)}
    records = []
    if split == "train":
        for wnid in wnids:
            folder = os.path.join(root, "train", wnid)
            if not os.path.isdir(folder):
                raise DataError(f"{folder}: no such directory (class {wnid} of wnids.txt)")
            ann, group = os.path.join(folder, f"{wnid}_boxes.txt"), []
            for n, fields in _read_lines(ann):
                if len(fields) != 5:
                    raise DataError(
                        f"{ann}:{n}: expected 'file x0 y0 x1 y1', got {' '.join(fields)!r}"
                    )
                group.append((fields[0], f"{ann}:{n}"))
                records.append(
                    (
                        f"train/{wnid}/images/{fields[0]}",
                        label_of[wnid],
                        _parse_box(fields[1:], f"{ann}:{n}"),
                        f"{ann}:{n}",
                    )
                )
            _check_against_disk(os.path.join(folder, "images"), ann, group)
    else:
        ann, group = os.path.join(root, "val", "val_annotations.txt"), []
        for n, fields in _read_lines(ann):
            if len(fields) != 6:
                raise DataError(
                    f"{ann}:{n}: expected 'file wnid x0 y0 x1 y1', got {' '.join(fields)!r}"
                )
            if fields[1] not in label_of:
                raise DataError(
                    f"{ann}:{n}: wnid {fields[1]} is not in {os.path.join(root, 'wnids.txt')}"
                )
            group.append((fields[0], f"{ann}:{n}"))
            records.append(
                (
                    f"val/images/{fields[0]}",
                    label_of[fields[1]],
                    _parse_box(fields[2:], f"{ann}:{n}"),
                    f"{ann}:{n}",
                )
            )
        _check_against_disk(os.path.join(root, "val", "images"), ann, group)
    if not records:
        raise DataError(f"{os.path.join(root, split)}: the {split} split has no annotated images")
    return records


def read_annotations(root, split):
    """The :class:`Annotations` of ``<root>``'s ``split`` ("train" or "val"), without decoding any image.

    Checks the root, ``wnids.txt``, every annotation line, and that the annotated images and
    the files in the image folders are the same names (a listing, no ``stat`` per image).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = os.fspath(root)
    check_root(root)
    wnids = read_wnids(root)
    records = _records(root, split, wnids)
    return Annotations(
        files=[r[0] for r in records],
        labels=np.array([r[1] for r in records], np.int32),
        boxes=np.array([r[2] for r in records], np.int32).reshape(-1, 4),
        wnids=wnids,
        lines=[r[3] for r in records],
    )


def stat_image(path, where):
    """``os.stat(path)``; a dangling symbolic link, a link loop or another failure is one DataError.

    ``where`` ("annotation file:line") is named in the message with the path.
    """
    try:
        return os.stat(path)
    except OSError as e:
        if os.path.islink(path) and e.errno == errno.ENOENT:
            reason = f"is a symbolic link to {os.readlink(path)}, which does not exist"
        elif e.errno == errno.ELOOP:
            reason = "is a symbolic link loop"
        else:
            reason = f"cannot be read ({e.strerror})"
        raise DataError(f"{where}: image {path} {reason}") from None
