"""``words.txt``: the one reader of Tiny ImageNet's class descriptions (numpy-free, no TensorFlow).

Layout (README, "Tiny ImageNet"): one ``wnid<TAB>description`` a line, covering all of WordNet in
the real file (``n01443537	goldfish, Carassius auratus``), the classes and a few unrelated lines
in a synthetic one (dataflow.synthetic).  Used for readable captions (Figure 2), never for labels.
"""

import os


def class_names(root, wnids):
    """``[name]`` per wnid: the first comma-separated part of its description in ``root/words.txt``
    (``goldfish``), or the wnid itself where the file or its line is missing."""
    names = {}
    try:
        with open(os.path.join(root, "words.txt"), encoding="utf-8", errors="replace") as f:
            for line in f:
                wnid, _, text = line.rstrip("\n").partition("\t")
                if text.strip():
                    names[wnid.strip()] = text.split(",")[0].strip()
    except OSError:
        pass
    return [names.get(w, w) for w in wnids]
