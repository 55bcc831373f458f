"""Plain-PyTorch data code: readers, datasets, transforms and SynthMG (no Lightning here).

Everything a datamodule, a model or a command needs to know about files and
frames lives here, below them, so imports run one way (``tools/import_graph.py``):

* :mod:`.readers`: one module per file format: the releases, the feature folders
  of ``mgr extract-features`` (:mod:`.readers.features`) and the pseudo-label
  files of ``mgr pseudo-label`` (:mod:`.readers.pseudo_labels`), which the
  datamodules read and the commands above write.
* :mod:`.transforms`: pose, heatmaps, video and the step <-> frame mapping of
  sliding windows (:mod:`.transforms.steps`, shared by the online datamodules,
  the detector and the feature extraction).
* :mod:`.datasets`, :mod:`.samplers`, :mod:`.seeding`, :mod:`.cache`: torch
  Datasets and samplers over the readers' records, and the parsed-release cache.
* :mod:`.sequences`: untrimmed sequences as training windows (the online
  detector's Dataset and collate); :mod:`.windows`: sliding windows of a long
  sequence as a recognizer's batches (``mgr extract-features``, ``detect``,
  ``recognize``).
* :mod:`.synthetic`: SynthMG, written in the real on-disk layouts (a package:
  body model, gesture table, motion, per-layout writers, RGB renderer).
"""
