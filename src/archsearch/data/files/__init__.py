"""Dataset sources read from local files: CIFAR-10/100, MNIST-style idx files, image folders.

Nothing is downloaded: each source reads the files exactly as the official archives (or
torchvision) unpack them. Every problem with a file becomes a one-line :class:`DataError`
that names the file, so a user can fix the data without reading a traceback.

One module per format (``cifar``, ``idx``, ``image_folder``; ``pickles`` reads CIFAR's pickled
batches safely), and ``detect`` tells a path's format.
"""

from archsearch.data.files.cifar import Cifar10, Cifar100
from archsearch.data.files.detect import dataset_spec, detect_format
from archsearch.data.files.idx import FashionMnist, Mnist, read_idx
from archsearch.data.files.image_folder import IMAGE_EXTENSIONS, ImageFolder
from archsearch.data.files.pickles import safe_unpickle

__all__ = [
    "Cifar10",
    "Cifar100",
    "FashionMnist",
    "ImageFolder",
    "Mnist",
    "IMAGE_EXTENSIONS",
    "dataset_spec",
    "detect_format",
    "read_idx",
    "safe_unpickle",
]
