"""Dataset loaders for the reproduction: MNIST and Penn Treebank.

The real data ships in the repository's data/ folder (provenance: data/README.md) and is
checked against canonical SHA-256 hashes; ``source="hub"`` reads the Hugging Face copies
(or a ``save_to_disk`` directory) through the ``datasets`` library instead.
"""

from reproduce.datasets.integrity import DATA_ROOT, DataError, verify_file
from reproduce.datasets.mnist import MNIST_MEAN, MNIST_STD, load_mnist
from reproduce.datasets.ptb import PTBCorpus, batchify, load_ptb

__all__ = [
    "DATA_ROOT",
    "MNIST_MEAN",
    "MNIST_STD",
    "DataError",
    "PTBCorpus",
    "batchify",
    "load_mnist",
    "load_ptb",
    "verify_file",
]
