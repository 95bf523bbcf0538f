"""Data sources: the built-in digits, arrays, local files (CIFAR, MNIST idx, image folders) and text corpora."""

from archsearch.data import files as _files  # noqa: F401  (registers the file formats)
from archsearch.data import text as _text  # noqa: F401  (registers the text corpora)
from archsearch.data.base import (
    DATASETS,
    ArraySource,
    DatasetSource,
    RawData,
    Split,
    Splits,
    from_arrays,
    from_torch_dataset,
    list_datasets,
    load_splits,
    make_splits,
    register_dataset,
)
from archsearch.data.files import detect_format

__all__ = [
    "ArraySource", "DATASETS", "DatasetSource", "RawData", "Split", "Splits", "detect_format", "from_arrays",
    "from_torch_dataset", "list_datasets", "load_splits", "make_splits", "register_dataset",
]
