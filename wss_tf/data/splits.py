"""The official split lists (one image id per line), shipped in wss_tf/data/splits/<dataset>/<split>.txt."""
from __future__ import annotations

import os

SPLITS_DIR = os.path.join(os.path.dirname(__file__), "splits")


def available_splits(dataset: str) -> list[str]:
    folder = os.path.join(SPLITS_DIR, dataset)
    if not os.path.isdir(folder):
        return []
    return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".txt"))


def read_split(dataset: str, split: str) -> list[str]:
    """Image ids of `split`: a shipped list name (e.g. "16_clean_3") or a path to a list file."""
    path = split if split.endswith(".txt") and os.path.exists(split) else os.path.join(SPLITS_DIR, dataset,
                                                                                       f"{split}.txt")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no split list {split!r} for dataset {dataset!r}; shipped lists: "
                                f"{available_splits(dataset) or 'none'} (or pass a path to a .txt list)")
    return read_list(path)


def read_list(path: str) -> list[str]:
    """One id per line, blank lines skipped; a repeated id is an error."""
    with open(path) as f:
        ids = [line.strip() for line in f if line.strip()]
    if len(ids) != len(set(ids)):
        raise ValueError(f"split list {path} repeats image ids")
    return ids
