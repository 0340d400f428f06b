"""Data layer: read archives and folders in place, decode once into a cache, split, batch."""

from genspot.data.decode import DecodedSet, load_dataset
from genspot.data.sources import LABELS, Record, open_source
from genspot.data.splits import Splits, make_splits

__all__ = ["LABELS", "DecodedSet", "Record", "Splits", "load_dataset", "make_splits", "open_source"]
