"""Binary image data for the discrete VAE: scikit-learn's 8 × 8 digits (default) and local MNIST IDX files.

- :func:`load_digits_binary`: the 1,797 bundled 8 × 8 digits of scikit-learn (no download), binarised
  at ``pixel > threshold`` (pixels are 0..16), split into train / test by a seeded permutation.
- :func:`read_idx`: one IDX file (``.gz`` or not), the format of the original MNIST files.
- :func:`load_mnist_binary`: ``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte`` (optionally
  ``.gz``) from a local folder, binarised at ``pixel > threshold`` (pixels are 0..255).

Every loader returns a :class:`BinaryImages`: ``train`` and ``test`` float32 tensors ``[N, H * W]`` of
0/1 values, and the image side lengths.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["DATASETS", "BinaryImages", "load_digits_binary", "load_mnist_binary", "read_idx", "write_idx"]

DATASETS = ("digits", "mnist")

# IDX type codes (the third byte of the magic number) -> numpy big-endian dtypes
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass
class BinaryImages:
    """Binarised images: ``train`` ``[N_train, H * W]`` and ``test`` ``[N_test, H * W]`` (float32, 0/1)."""

    train: Tensor
    test: Tensor
    height: int
    width: int
    source: str

    @property
    def num_pixels(self) -> int:
        return self.height * self.width


def _check_threshold(threshold: float, top: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < top:
        raise ValueError(f"threshold must be a number in [0, {top}); got {threshold!r}")
    return float(threshold)


def load_digits_binary(*, threshold: float = 7.0, test_fraction: float = 0.2, seed: int = 0) -> BinaryImages:
    """scikit-learn's bundled 8 × 8 digits, ``pixel > threshold`` (pixels 0..16), seeded train / test split.

    Needs scikit-learn (``pip install scikit-learn``, or the ``dvae`` extra); nothing is downloaded.
    """
    threshold = _check_threshold(threshold, 16.0)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the 8x8 digits data set needs scikit-learn: pip install scikit-learn "
                          "(or pip install 'discograd[dvae]')") from exc
    pixels = np.asarray(load_digits().data, dtype=np.float64)  # [1797, 64], 0..16
    images = torch.from_numpy((pixels > threshold).astype(np.float32))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    num_test = max(1, round(test_fraction * len(images)))
    return BinaryImages(train=images[order[num_test:]].contiguous(), test=images[order[:num_test]].contiguous(),
                        height=8, width=8, source=f"sklearn digits, pixel > {threshold:g} of 16")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST format; gzip-compressed when the name ends in ``.gz``).

    Layout: two zero bytes, a type byte (``0x08`` = unsigned byte, ...), the number of dimensions, then
    each dimension as a big-endian uint32, then the data, big-endian, row-major. Raises ``ValueError``
    naming the file when the header is malformed or the data length does not match the dimensions.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read the IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file: its first two bytes must be 0 (got {raw[:4]!r})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX data type 0x{code:02x} (expected one of "
                         f"{', '.join(f'0x{c:02x}' for c in _IDX_TYPES)})")
    if ndim < 1 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({ndim} dimensions, {len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise ValueError(f"{path}: the header announces shape {tuple(shape)} ({expected} bytes of data) but the file "
                         f"holds {len(body)} bytes of data")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` (uint8) as an IDX file (gzip-compressed when the name ends in ``.gz``): for fixtures."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"array must be uint8; got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes(order="C")
    path = Path(path)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).exists():
            return folder / name
    raise ValueError(f"{folder} has no {stem} (or {stem}.gz); the MNIST loader needs train-images-idx3-ubyte and "
                     "t10k-images-idx3-ubyte")


def load_mnist_binary(folder: str | os.PathLike, *, threshold: float = 127.0) -> BinaryImages:
    """MNIST from a local folder of IDX files, ``pixel > threshold`` (pixels 0..255).

    Reads ``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte`` (each optionally ``.gz``); labels
    are not needed. The original train / test split is kept.
    """
    threshold = _check_threshold(threshold, 255.0)
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"data_dir must be a folder with the MNIST IDX files; got {folder}")
    splits = []
    paths = [_find(folder, stem) for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")]
    for path in paths:
        images = read_idx(path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{path} must hold uint8 images [N, H, W]; got {images.dtype} {images.shape}")
        splits.append(images)
    if splits[0].shape[1:] != splits[1].shape[1:]:
        raise ValueError(f"train and test images differ in size: {splits[0].shape[1:]} and {splits[1].shape[1:]}")
    height, width = splits[0].shape[1:]
    train, test = (torch.from_numpy((s.reshape(len(s), -1) > threshold).astype(np.float32)) for s in splits)
    return BinaryImages(train=train, test=test, height=int(height), width=int(width),
                        source=f"MNIST IDX files in {folder}, pixel > {threshold:g} of 255")
