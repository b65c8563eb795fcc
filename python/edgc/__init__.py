"""edgc: Entropy-driven Dynamic Gradient Compression (libedgc) for Python.

edgc.torch holds the DistributedDataParallel communication hook. The C library is loaded with
ctypes (see edgc._lib for where it is looked for).
"""

from . import _lib

__version__ = _lib.lib.edgc_version_string().decode()
