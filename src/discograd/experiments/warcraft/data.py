r"""Warcraft shortest-path data: a procedural generator of Warcraft-like maps and a loader for the original files.

The benchmark (Vlastelica et al., ICLR 2020, arXiv:1912.02175; used with I-MLE by Niepert et al., NeurIPS 2021,
arXiv:2106.01798): a ``K x K`` grid of terrain cells, each drawn as an ``8 x 8`` RGB tile (a ``12 x 12`` map is a
``96 x 96`` image); every cell has a travel cost; the label is the minimum-cost path from the top-left to the
bottom-right cell under 8-neighbour moves, costs on the vertices (source and target included). A network reads
the image, predicts the ``K x K`` costs, and a solver turns them into a path.

The original data cannot be downloaded here, so :func:`generate_warcraft` makes data of the same form, and
:func:`load_warcraft` reads the original files when a user has them. Both return a :class:`WarcraftData`.

Generated maps (generator version :data:`GENERATOR_VERSION`):

- **Terrain.** Six types with fixed costs (:data:`TERRAIN_COSTS`, all within the original range
  ``[0.8, 9.2]``): road 0.8, grass 1.2, sand 2.6, forest 5.3, water 7.7, mountain 9.2. Regions are spatially
  coherent: two smooth random fields (elevation and moisture: white noise blurred by Gaussians of 2.0 and
  0.8 cells, plus a per-map "climate" offset) are thresholded into lakes (low), mountains (high), and forest,
  grass or sand (by moisture) in between. Then up to ``max(1, round(K / 12))`` meandering rivers (4-connected,
  so a path cannot slip between two diagonal water cells; they do not cross mountains) and up to
  ``max(1, round(K / 8))`` roads (8-connected; they cross everything, bridges and passes included) run from one
  border of the map to another. The feature scale is fixed in cells, so larger ``K`` means a larger
  landscape, as in the original, not a zoomed one.
- **Tiles.** Each type has a fixed tileset of :data:`NUM_TILE_VARIANTS` hand-made ``8 x 8`` textures (grass
  tufts, tree crowns, waves, lit and shaded peaks with snow, sand ripples, pebbled dirt); each cell takes one
  variant at random, then a per-map colour tint, a per-cell brightness jitter and per-pixel Gaussian noise
  are added. Cell types are separable by colour, but no two cells of a type are drawn the same.
- **Labels.** ``weights[n, i, j] = TERRAIN_COSTS[type]`` (float32) and ``paths`` = the optimal path computed
  by :class:`discograd.solvers.GridShortestPath` ``(neighbourhood=8)`` on ``theta = -weights``, one batched
  call per split. Costs take six values, so equal-cost paths exist; the solver breaks ties by a fixed rule
  (see its docstring), so labels are deterministic. Judge a predicted path by its cost, not by equality.
- **Randomness.** Split ``s`` (0 train, 1 val, 2 test) is built in chunks of :data:`CHUNK_SIZE` maps; chunk
  ``c`` draws from ``numpy.random.default_rng(SeedSequence(seed, spawn_key=(s, c)))``, always for a full chunk.
  So the three splits are independent streams, and map ``i`` of a split depends only on ``(seed, split, i, K)``:
  asking for fewer maps gives a prefix of the same data. Everything is vectorised over the maps of a chunk
  (the pixel work) or of the split (the solver); 10,000 maps of ``12 x 12`` take a few seconds.

Disk layout (the original data set's file names, so :func:`load_warcraft` reads both)::

    {folder}/{split}_maps.npy            uint8   [N, 8K, 8K, 3]   RGB image, 8 x 8 pixels per cell
    {folder}/{split}_vertex_weights.npy  float32 [N, K, K]         true cost of every cell
    {folder}/{split}_shortest_paths.npy  uint8   [N, K, K]         0/1 indicator of the optimal path
    for split in train, val, test.

The original data set ships one such folder per grid size, named ``12x12``, ``18x18``, ``24x24``, ``30x30``
(with its own dtypes; the loader converts). :func:`generate_warcraft` with ``cache_dir`` writes
``{cache_dir}/warcraft_{K}x{K}_seed{seed}_n{num_train}-{num_val}-{num_test}/`` with the nine files above and a
``meta.json`` (format, generator version, grid size, seed, split sizes, tile size, terrain costs). The folder
is written into a temporary sibling folder and renamed into place, so it is complete or absent; a later call
with the same arguments loads it when its ``meta.json`` matches, and regenerates (replacing it) otherwise.

Example:
    >>> from discograd.experiments.warcraft import generate_warcraft
    >>> data = generate_warcraft(12, num_train=4, num_val=2, num_test=2, seed=0)
    >>> data.train.maps.shape, data.train.weights.shape, data.train.paths.shape
    ((4, 96, 96, 3), (4, 12, 12), (4, 12, 12))
    >>> maps, weights, paths = data.test.as_tensors()
    >>> tuple(maps.shape), maps.dtype, float(paths[0, 0, 0]), float(paths[0, -1, -1])
    ((2, 3, 96, 96), torch.float32, 1.0, 1.0)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..._validation import check_int

__all__ = [
    "GENERATOR_VERSION",
    "SPLITS",
    "TERRAIN_COSTS",
    "TERRAIN_TYPES",
    "TILE_SIZE",
    "WarcraftData",
    "WarcraftSplit",
    "generate_warcraft",
    "load_warcraft",
    "optimal_paths",
    "path_costs",
    "plot_paths",
]

#: bumped whenever a change to the generator changes the maps it produces (cached folders are then rebuilt)
GENERATOR_VERSION = 1
#: pixels per cell side, as in the original data set
TILE_SIZE = 8
#: the splits, in the order of their seed streams
SPLITS = ("train", "val", "test")
#: maps per chunk of the generator (a fixed part of the generator: it decides which random numbers a map uses)
CHUNK_SIZE = 128
#: textures per terrain type in the fixed tileset
NUM_TILE_VARIANTS = 6

#: terrain type -> travel cost of a cell of that type (the vertex weight); every value lies in [0.8, 9.2]
TERRAIN_COSTS: dict[str, float] = {
    "road": 0.8,
    "grass": 1.2,
    "sand": 2.6,
    "forest": 5.3,
    "water": 7.7,
    "mountain": 9.2,
}
#: the terrain types in index order (``TERRAIN_TYPES[t]`` has cost ``TERRAIN_COSTS[TERRAIN_TYPES[t]]``)
TERRAIN_TYPES: tuple[str, ...] = tuple(TERRAIN_COSTS)

_ROAD, _GRASS, _SAND, _FOREST, _WATER, _MOUNTAIN = range(len(TERRAIN_TYPES))
_COST_TABLE = np.array([TERRAIN_COSTS[name] for name in TERRAIN_TYPES], dtype=np.float32)

# the terrain model, in standard-deviation units of the fields (see _terrain)
_SIGMA_COARSE = 2.0      # cells: the size of lakes, forests, mountain ranges
_SIGMA_FINE = 0.8        # cells: ragged region borders
_WEIGHT_COARSE = 0.85
_WEIGHT_FINE = 0.45
_CLIMATE_SPREAD = 0.3    # per-map offset of both fields: some maps are wetter or hillier than others
_WATER_BELOW = -1.05     # elevation
_MOUNTAIN_ABOVE = 1.05   # elevation
_FOREST_ABOVE = 0.45     # moisture
_SAND_BELOW = -0.85      # moisture
_RIVER_PROBABILITY = 0.4
_ROAD_PROBABILITY = 0.45

_PIXEL_NOISE = 6.0      # std of the per-pixel noise, in 0..255 units
_TRIANGULAR_STD = math.sqrt(2 * (256 ** 2 - 1) / 12)  # std of the sum of two uniform bytes

_FORMAT = "discograd-warcraft"


# -- data containers -----------------------------------------------------------------------------------------


@dataclass
class WarcraftSplit:
    """One split of the data set: images, true costs and optimal paths of ``N`` maps of ``K x K`` cells.

    Attributes:
        maps: uint8 ``[N, 8K, 8K, 3]`` RGB images (``8 x 8`` pixels per cell, channels last).
        weights: float32 ``[N, K, K]`` true vertex costs.
        paths: uint8 ``[N, K, K]`` 0/1 indicator of an optimal path from ``(0, 0)`` to ``(K-1, K-1)``
            (8-neighbour moves, vertex costs including source and target).
    """

    maps: np.ndarray
    weights: np.ndarray
    paths: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.maps)
        if self.maps.ndim != 4 or self.weights.ndim != 3 or self.paths.shape != self.weights.shape:
            raise ValueError(
                f"WarcraftSplit needs maps [N, 8K, 8K, 3], weights [N, K, K] and paths [N, K, K]; got maps "
                f"{self.maps.shape}, weights {self.weights.shape}, paths {self.paths.shape}"
            )
        if len(self.weights) != n:
            raise ValueError(f"WarcraftSplit: maps hold {n} maps but weights hold {len(self.weights)}")

    def __len__(self) -> int:
        return len(self.maps)

    @property
    def grid_size(self) -> int:
        """``K``, the number of cells along a side."""
        return int(self.weights.shape[-1])

    def as_tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(maps, weights, paths)`` as float32 tensors: maps ``[N, 3, 8K, 8K]`` in ``[0, 1]`` (channels first,
        contiguous), weights ``[N, K, K]``, paths ``[N, K, K]``."""
        n, height, width, channels = self.maps.shape
        maps = torch.empty((n, channels, height, width), dtype=torch.float32)
        maps.copy_(torch.from_numpy(np.ascontiguousarray(self.maps)).permute(0, 3, 1, 2))
        maps.div_(255.0)
        weights = torch.from_numpy(np.asarray(self.weights, dtype=np.float32).copy())
        paths = torch.from_numpy(np.asarray(self.paths, dtype=np.float32).copy())
        return maps, weights, paths


@dataclass
class WarcraftData:
    """The three splits of a Warcraft data set.

    Attributes:
        train, val, test: the splits.
        grid_size: ``K``.
        source: ``"generated"`` for :func:`generate_warcraft` (whether freshly made or read from its cache),
            else the folder the files were read from.
        cache_path: the cache folder :func:`generate_warcraft` read or wrote, ``None`` without a cache.
    """

    train: WarcraftSplit
    val: WarcraftSplit
    test: WarcraftSplit
    grid_size: int
    source: str
    cache_path: Path | None = None

    def split(self, name: str) -> WarcraftSplit:
        """The split called ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {name!r}")
        return getattr(self, name)


# -- generator -----------------------------------------------------------------------------------------------


def generate_warcraft(grid_size: int = 12, num_train: int = 10_000, num_val: int = 1_000, num_test: int = 1_000, *,
                      seed: int = 0, cache_dir: str | os.PathLike | None = None,
                      progress: bool = False) -> WarcraftData:
    """Generate Warcraft-like maps with their true costs and optimal paths (see the module docstring).

    Args:
        grid_size: ``K``, cells per side (the paper uses 12, 18, 24 and 30); at least 2.
        num_train, num_val, num_test: maps per split (``>= 0``).
        seed: a non-negative integer; the same seed gives the same arrays, on any machine and thread count.
        cache_dir: if given, the data set is read from / written to a subfolder of it (layout in the module
            docstring), atomically.
        progress: show a progress bar per split.

    Returns:
        A :class:`WarcraftData` with ``source="generated"``.
    """
    grid_size = check_int(grid_size, "grid_size", minimum=2)
    sizes = {
        "train": check_int(num_train, "num_train", minimum=0),
        "val": check_int(num_val, "num_val", minimum=0),
        "test": check_int(num_test, "num_test", minimum=0),
    }
    seed = check_int(seed, "seed", minimum=0)
    if cache_dir is None:
        splits = {name: _generate_split(grid_size, sizes[name], seed, index, progress)
                  for index, name in enumerate(SPLITS)}
        return WarcraftData(**splits, grid_size=grid_size, source="generated")

    cache_dir = Path(cache_dir)
    folder = cache_dir / f"warcraft_{grid_size}x{grid_size}_seed{seed}_n{sizes['train']}-{sizes['val']}-{sizes['test']}"
    meta = _meta(grid_size, seed, sizes)
    cached = _read_cache(folder, meta)
    if cached is not None:
        return WarcraftData(**cached, grid_size=grid_size, source="generated", cache_path=folder)
    splits = {name: _generate_split(grid_size, sizes[name], seed, index, progress)
              for index, name in enumerate(SPLITS)}
    _write_cache(folder, splits, meta)
    return WarcraftData(**splits, grid_size=grid_size, source="generated", cache_path=folder)


def _meta(grid_size: int, seed: int, sizes: dict[str, int]) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "generator_version": GENERATOR_VERSION,
        "grid_size": grid_size,
        "seed": seed,
        "num_train": sizes["train"],
        "num_val": sizes["val"],
        "num_test": sizes["test"],
        "tile_size": TILE_SIZE,
        "terrain_costs": dict(TERRAIN_COSTS),
    }


def _generate_split(grid_size: int, num_maps: int, seed: int, split_index: int, progress: bool) -> WarcraftSplit:
    """Maps chunk by chunk (each chunk always drawn in full, then cut), then all labels in one solver call."""
    from tqdm.auto import tqdm

    pixels = TILE_SIZE * grid_size
    maps = np.empty((num_maps, pixels, pixels, 3), dtype=np.uint8)
    terrain = np.empty((num_maps, grid_size, grid_size), dtype=np.int8)
    with tqdm(total=num_maps, disable=not progress or num_maps == 0, desc=f"warcraft {SPLITS[split_index]} {grid_size}x{grid_size}",
              unit="map") as bar:
        for chunk, start in enumerate(range(0, num_maps, CHUNK_SIZE)):
            stop = min(start + CHUNK_SIZE, num_maps)
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split_index, chunk)))
            chunk_terrain = _terrain(rng, CHUNK_SIZE, grid_size)
            chunk_maps = _render(rng, chunk_terrain)
            terrain[start:stop] = chunk_terrain[: stop - start]
            maps[start:stop] = chunk_maps[: stop - start]
            bar.update(stop - start)
    weights = _COST_TABLE[terrain]
    paths = optimal_paths(weights)
    return WarcraftSplit(maps=maps, weights=weights, paths=paths)


def optimal_paths(weights: np.ndarray | Tensor) -> np.ndarray:
    """uint8 ``[N, K, K]`` indicators of the optimal paths for the vertex costs ``weights`` ``[N, K, K]``
    (``>= 0``), from ``(0, 0)`` to ``(K-1, K-1)`` with 8-neighbour moves: the labels of the data set, computed
    by :class:`~discograd.solvers.GridShortestPath` in one batched call."""
    from ...solvers import GridShortestPath

    costs = torch.as_tensor(np.asarray(weights, dtype=np.float64) if not isinstance(weights, Tensor) else weights)
    z = GridShortestPath(neighbourhood=8, source=(0, 0), target=(-1, -1), negative_costs="raise")(-costs.double())
    return z.cpu().numpy().astype(np.uint8)


def path_costs(weights: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """float64 ``[N]`` costs ``sum(weights * paths)`` of the paths ``paths`` under the costs ``weights``."""
    return (np.asarray(weights, dtype=np.float64) * np.asarray(paths, dtype=np.float64)).sum(axis=(-2, -1))


# -- terrain -----------------------------------------------------------------------------------------------------


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = math.ceil(3 * sigma)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def _smooth_field(noise: np.ndarray, sigma: float, size: int) -> np.ndarray:
    """Blur white noise ``[..., size + 2P, size + 2P]`` (``P`` >= the kernel radius) with a Gaussian of ``sigma``
    cells and crop the centre ``[..., size, size]``, scaled to unit variance. Shifted sums, no BLAS: the same
    numbers on every machine."""
    kernel = _gaussian_kernel(sigma)
    radius = len(kernel) // 2
    start = (noise.shape[-1] - size) // 2 - radius
    rows = sum(w * noise[..., start + k: start + k + size, :] for k, w in enumerate(kernel))
    field = sum(w * rows[..., :, start + k: start + k + size] for k, w in enumerate(kernel))
    return field / float((kernel ** 2).sum())  # the std of a blurred unit white noise is sum(kernel^2)


def _terrain(rng: np.random.Generator, num_maps: int, grid_size: int) -> np.ndarray:
    """int8 ``[num_maps, K, K]`` terrain type indices (see the module docstring)."""
    pad = math.ceil(3 * max(_SIGMA_COARSE, _SIGMA_FINE))
    noise = rng.standard_normal((4, num_maps, grid_size + 2 * pad, grid_size + 2 * pad))
    climate = _CLIMATE_SPREAD * rng.standard_normal((2, num_maps, 1, 1))
    elevation = (_WEIGHT_COARSE * _smooth_field(noise[0], _SIGMA_COARSE, grid_size)
                 + _WEIGHT_FINE * _smooth_field(noise[1], _SIGMA_FINE, grid_size) + climate[0])
    moisture = (_WEIGHT_COARSE * _smooth_field(noise[2], _SIGMA_COARSE, grid_size)
                + _WEIGHT_FINE * _smooth_field(noise[3], _SIGMA_FINE, grid_size) + climate[1])

    terrain = np.full((num_maps, grid_size, grid_size), _GRASS, dtype=np.int8)
    terrain[moisture > _FOREST_ABOVE] = _FOREST
    terrain[moisture < _SAND_BELOW] = _SAND
    terrain[elevation < _WATER_BELOW] = _WATER
    terrain[elevation > _MOUNTAIN_ABOVE] = _MOUNTAIN

    max_rivers = max(1, round(grid_size / 12))
    rivers = _curves(rng, num_maps, grid_size, max_rivers, _RIVER_PROBABILITY, four_connected=True)
    terrain[rivers & (terrain != _MOUNTAIN)] = _WATER
    max_roads = max(1, round(grid_size / 8))
    roads = _curves(rng, num_maps, grid_size, max_roads, _ROAD_PROBABILITY, four_connected=False)
    terrain[roads] = _ROAD
    return terrain


def _curves(rng: np.random.Generator, num_maps: int, grid_size: int, max_count: int, probability: float, *,
            four_connected: bool) -> np.ndarray:
    """bool ``[num_maps, K, K]``: ``Binomial(max_count, probability)`` meandering curves per map, each from a
    point on one border to a point on another border, rasterised 8-connected (or 4-connected)."""
    shape = (num_maps, max_count)
    present = rng.random(shape) < probability
    side_a = rng.integers(0, 4, size=shape)
    side_b = (side_a + rng.integers(1, 4, size=shape)) % 4
    along = rng.random((2,) + shape) * grid_size
    amplitude = rng.random(shape) * 0.15
    frequency = 0.5 + rng.random(shape)
    phase = rng.random(shape) * 2 * np.pi

    def border_point(side: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # 0: top, 1: right, 2: bottom, 3: left; coordinates in cells, (row, column)
        edge = np.full_like(u, 0.5)
        far = np.full_like(u, grid_size - 0.5)
        row = np.select([side == 0, side == 1, side == 2], [edge, u, far], u)
        col = np.select([side == 0, side == 1, side == 2], [u, far, u], edge)
        return row, col

    row0, col0 = border_point(side_a, along[0])
    row1, col1 = border_point(side_b, along[1])
    length = np.maximum(np.hypot(row1 - row0, col1 - col0), 1e-6)
    normal_row, normal_col = -(col1 - col0) / length, (row1 - row0) / length

    # samples closer than one cell apart (speed <= ~2.2 * length per unit t, length <= sqrt(2) K), so the
    # cells they fall in form an 8-connected chain
    t = np.linspace(0.0, 1.0, 6 * grid_size)[:, None, None]
    offset = (amplitude * length) * np.sin(np.pi * t) * np.sin(2 * np.pi * frequency * t + phase)
    rows = np.clip(np.floor(row0 + t * (row1 - row0) + offset * normal_row), 0, grid_size - 1).astype(np.intp)
    cols = np.clip(np.floor(col0 + t * (col1 - col0) + offset * normal_col), 0, grid_size - 1).astype(np.intp)

    mask = np.zeros((num_maps, grid_size, grid_size), dtype=bool)
    map_index = np.broadcast_to(np.arange(num_maps)[:, None], shape)
    keep = present
    mask[np.broadcast_to(map_index, rows.shape)[:, keep], rows[:, keep], cols[:, keep]] = True
    if four_connected:  # a diagonal step also fills the cell (row of this sample, column of the next one)
        mask[np.broadcast_to(map_index, rows.shape)[1:, keep], rows[:-1, keep], cols[1:, keep]] = True
    return mask


# -- rendering -----------------------------------------------------------------------------------------------------


def _render(rng: np.random.Generator, terrain: np.ndarray) -> np.ndarray:
    """uint8 ``[n, 8K, 8K, 3]`` images of the terrain ``[n, K, K]``."""
    num_maps, grid_size, _ = terrain.shape
    bank = _tile_bank()  # [types, variants, 8, 8, 3]
    variant = rng.integers(0, NUM_TILE_VARIANTS, size=terrain.shape)
    tint = 1.0 + 0.04 * rng.standard_normal((num_maps, 1, 1, 1, 1, 3)).astype(np.float32)
    cell_light = 5.0 * rng.standard_normal((num_maps, grid_size, grid_size, 1, 1, 1)).astype(np.float32)
    tiles = bank[terrain, variant]  # [n, K, K, 8, 8, 3]
    tiles *= tint
    tiles += cell_light
    pixels = TILE_SIZE * grid_size
    image = tiles.transpose(0, 1, 3, 2, 4, 5).reshape(num_maps, pixels, pixels, 3)
    # per-pixel noise: the sum of two uniform bytes minus 255 (triangular on [-255, 255], std 104.5), scaled to
    # std _PIXEL_NOISE; random bytes are several times faster to draw than Gaussians, and look the same
    size = image.size
    noise = np.frombuffer(rng.bytes(2 * size), dtype=np.uint8)
    image += (noise[:size].astype(np.float32) + noise[size:] - np.float32(255)).reshape(image.shape) * np.float32(
        _PIXEL_NOISE / _TRIANGULAR_STD)
    np.clip(image, 0.0, 255.0, out=image)
    return np.rint(image, out=image).astype(np.uint8)


@lru_cache(maxsize=1)
def _tile_bank() -> np.ndarray:
    """The fixed tileset: float32 ``[len(TERRAIN_TYPES), NUM_TILE_VARIANTS, 8, 8, 3]`` RGB values in [0, 255].

    Drawn once from a fixed seed: like a game's tileset, the same for every data set and seed.
    """
    rng = np.random.default_rng(20_200_417)
    painters = {
        "road": _paint_road, "grass": _paint_grass, "sand": _paint_sand,
        "forest": _paint_forest, "water": _paint_water, "mountain": _paint_mountain,
    }
    bank = np.stack([np.stack([painters[name](rng) for _ in range(NUM_TILE_VARIANTS)]) for name in TERRAIN_TYPES])
    bank = np.clip(bank, 0, 255).astype(np.float32)
    bank.setflags(write=False)
    return bank


_Y, _X = np.mgrid[0:TILE_SIZE, 0:TILE_SIZE]


def _flat(colour: tuple[float, float, float], rng: np.random.Generator, grain: float) -> np.ndarray:
    """An 8 x 8 tile of ``colour`` with a luminance grain of std ``grain``."""
    return np.asarray(colour, dtype=np.float64) + grain * rng.standard_normal((TILE_SIZE, TILE_SIZE, 1))


def _speckle(tile: np.ndarray, rng: np.random.Generator, count: int, delta: tuple[float, float, float]) -> None:
    cells = rng.choice(TILE_SIZE * TILE_SIZE, size=count, replace=False)
    tile.reshape(-1, 3)[cells] += np.asarray(delta)


def _paint_grass(rng: np.random.Generator) -> np.ndarray:
    tile = _flat((80, 142, 54), rng, 5.0)
    _speckle(tile, rng, 7, (22, 30, 10))     # light tufts
    _speckle(tile, rng, 5, (-22, -28, -14))  # shadows
    return tile


def _paint_forest(rng: np.random.Generator) -> np.ndarray:
    tile = _flat((38, 74, 34), rng, 4.0)
    for _ in range(3):
        cy, cx = rng.uniform(1.5, 5.5, size=2)
        radius = rng.uniform(1.6, 2.2)
        dy, dx = _Y - cy, _X - cx
        crown = dy ** 2 + dx ** 2 <= radius ** 2
        trunk = (np.abs(_X - round(cx)) < 0.5) & (_Y > cy + radius - 0.5) & (_Y <= cy + radius + 1)
        tile[trunk & ~crown] = (88, 60, 34)
        tile[crown] = (30, 98, 40)
        tile[crown & (dy + dx < -radius * 0.6)] += (26, 34, 14)   # lit upper left
        tile[crown & (dy + dx > radius * 0.7)] -= (12, 30, 16)    # shaded lower right
    return tile + 3.0 * rng.standard_normal((TILE_SIZE, TILE_SIZE, 1))


def _paint_water(rng: np.random.Generator) -> np.ndarray:
    tile = _flat((36, 86, 170), rng, 3.0)
    phase = rng.integers(0, 3)
    for y in range(TILE_SIZE):
        if (y + phase) % 3 == 0:
            start = rng.integers(0, TILE_SIZE - 2)
            tile[y, start: start + 3] += (40, 46, 40)  # wave crest
    _speckle(tile, rng, 4, (-12, -20, -26))             # depth
    return tile


def _paint_mountain(rng: np.random.Generator) -> np.ndarray:
    tile = _flat((110, 98, 84), rng, 6.0)  # rocky ground
    apex = rng.uniform(3.0, 4.5)
    top = rng.uniform(0.5, 1.5)
    slope = rng.uniform(0.55, 0.75)
    inside = np.abs(_X + 0.5 - apex) <= (_Y + 0.5 - top) * slope + 0.5
    lit = inside & (_X + 0.5 < apex)
    tile[lit] = (170, 160, 146)
    tile[inside & ~lit] = (88, 80, 72)
    tile[inside & (_Y + 0.5 - top < 2.2)] = (232, 232, 238)  # snow cap
    return tile + 4.0 * rng.standard_normal((TILE_SIZE, TILE_SIZE, 1))


def _paint_sand(rng: np.random.Generator) -> np.ndarray:
    tile = _flat((214, 192, 130), rng, 4.0)
    phase = rng.integers(0, 4)
    tile[(_X + _Y + phase) % 4 == 0] -= (20, 22, 18)  # ripples
    _speckle(tile, rng, 4, (16, 16, 14))
    return tile


def _paint_road(rng: np.random.Generator) -> np.ndarray:
    tile = _flat((150, 112, 70), rng, 5.0)
    _speckle(tile, rng, 8, (30, 26, 20))     # pebbles
    _speckle(tile, rng, 6, (-26, -22, -16))  # ruts
    return tile


# -- cache -----------------------------------------------------------------------------------------------------------


def _read_cache(folder: Path, meta: dict[str, Any]) -> dict[str, WarcraftSplit] | None:
    """The cached splits when ``folder`` holds a complete data set whose meta.json equals ``meta``, else None."""
    try:
        with open(folder / "meta.json", encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError):
        return None
    if found != meta:
        return None
    try:
        return {name: _read_split(folder, name, meta["grid_size"]) for name in SPLITS}
    except (OSError, ValueError):
        return None


def _write_cache(folder: Path, splits: dict[str, WarcraftSplit], meta: dict[str, Any]) -> None:
    """Write the data set into a temporary sibling folder, then rename it to ``folder`` (replacing a stale one)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700 folders: a shared cache is for every user (and node) to read
    try:
        for name, split in splits.items():
            for kind, array in (("maps", split.maps), ("vertex_weights", split.weights),
                                ("shortest_paths", split.paths)):
                with open(tmp / f"{name}_{kind}.npy", "wb") as f:
                    np.save(f, array, allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, folder)  # atomic when folder is absent (or an empty folder)
        except OSError:
            # a stale data set (or one another process has just finished) is in the way: move it aside first
            stale = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".stale", dir=folder.parent))
            os.replace(folder, stale / "old")
            os.replace(tmp, folder)
            shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- loader of the original layout -------------------------------------------------------------------------------


def load_warcraft(folder: str | os.PathLike, grid_size: int) -> WarcraftData:
    """Read a Warcraft data set in the original layout (Vlastelica et al., 2020).

    ``folder`` is either the folder holding ``{train,val,test}_{maps,vertex_weights,shortest_paths}.npy`` or its
    parent holding a ``{K}x{K}`` subfolder (e.g. the unpacked ``warcraft_shortest_path`` folder with ``12x12/``,
    ``18x18/``, ...). Files are read with ``np.load(..., allow_pickle=False)`` and checked: maps
    ``[N, 8K, 8K, 3]`` with whole values in ``[0, 255]`` (returned as uint8), vertex weights ``[N, K, K]``
    finite and ``>= 0`` (float32), shortest paths ``[N, K, K]`` with values 0 and 1 (uint8), the same ``N`` in
    the three files of a split. Errors name the file, what was found and what was expected.

    Returns:
        A :class:`WarcraftData` whose ``source`` is the folder the files were read from.
    """
    grid_size = check_int(grid_size, "grid_size", minimum=1)
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"load_warcraft: folder {str(root)!r} does not exist or is not a folder")
    sub = root / f"{grid_size}x{grid_size}"
    if sub.is_dir():
        root = sub
    elif not (root / "train_maps.npy").exists():
        raise FileNotFoundError(
            f"load_warcraft: {str(root)!r} holds neither train_maps.npy nor a {grid_size}x{grid_size} subfolder; "
            f"expected the original layout {{folder}}/{grid_size}x{grid_size}/{{train,val,test}}_maps.npy, "
            f"_vertex_weights.npy and _shortest_paths.npy"
        )
    splits = {name: _read_split(root, name, grid_size) for name in SPLITS}
    return WarcraftData(**splits, grid_size=grid_size, source=str(root))


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"load_warcraft: missing file {str(path)!r}")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{str(path)!r} could not be read as a plain .npy array (pickles are disabled): {exc}") from exc
    if isinstance(array, np.ndarray):
        return array
    array.close()  # an .npz archive under a .npy name
    raise ValueError(f"{str(path)!r} must hold one .npy array; got an .npz archive")


def _check_shape(path: Path, array: np.ndarray, expected: tuple[Any, ...], what: str) -> None:
    ok = array.ndim == len(expected) and all(e == "N" or s == e for s, e in zip(array.shape, expected))
    if not ok:
        shown = "(" + ", ".join(str(e) for e in expected) + ")"
        raise ValueError(f"{str(path)!r}: expected {what} of shape {shown}; found shape {tuple(array.shape)}")


def _check_real(path: Path, array: np.ndarray) -> None:
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
            or array.dtype == np.bool_):
        raise ValueError(f"{str(path)!r}: expected a numeric array; found dtype {array.dtype}")


def _read_split(folder: Path, split: str, grid_size: int) -> WarcraftSplit:
    pixels = TILE_SIZE * grid_size
    k = grid_size
    maps_path = folder / f"{split}_maps.npy"
    weights_path = folder / f"{split}_vertex_weights.npy"
    paths_path = folder / f"{split}_shortest_paths.npy"

    maps = _load_npy(maps_path)
    _check_shape(maps_path, maps, ("N", pixels, pixels, 3),
                 f"{k}x{k} maps (N RGB images, {TILE_SIZE} x {TILE_SIZE} pixels per cell, channels last)")
    _check_real(maps_path, maps)
    if maps.dtype != np.uint8:
        if maps.size and (maps.min() < 0 or maps.max() > 255 or not np.array_equal(maps, np.round(maps))):
            raise ValueError(f"{str(maps_path)!r}: expected whole pixel values in [0, 255] (dtype uint8); found dtype "
                             f"{maps.dtype} with values in [{maps.min()}, {maps.max()}]")
        maps = maps.astype(np.uint8)

    weights = _load_npy(weights_path)
    _check_shape(weights_path, weights, ("N", k, k), f"{k}x{k} vertex weights (N maps of K x K costs)")
    _check_real(weights_path, weights)
    weights = weights.astype(np.float32, copy=False)
    if weights.size and not (np.isfinite(weights).all() and weights.min() >= 0):
        raise ValueError(f"{str(weights_path)!r}: vertex weights must be finite and >= 0; found values in "
                         f"[{np.nanmin(weights)}, {np.nanmax(weights)}] ({int((~np.isfinite(weights)).sum())} not finite)")

    paths = _load_npy(paths_path)
    _check_shape(paths_path, paths, ("N", k, k), f"{k}x{k} shortest paths (N maps of K x K 0/1 indicators)")
    _check_real(paths_path, paths)
    if paths.size and not np.isin(paths, (0, 1)).all():
        raise ValueError(f"{str(paths_path)!r}: shortest paths must hold only 0 and 1; found values "
                         f"{np.unique(paths)[:10].tolist()}")
    paths = paths.astype(np.uint8)

    if not len(maps) == len(weights) == len(paths):
        raise ValueError(f"{split} split in {str(folder)!r}: the files hold different numbers of maps: "
                         f"{split}_maps.npy {len(maps)}, {split}_vertex_weights.npy {len(weights)}, "
                         f"{split}_shortest_paths.npy {len(paths)}")
    return WarcraftSplit(maps=maps, weights=weights, paths=paths)


# -- plots -------------------------------------------------------------------------------------------------------------


def plot_paths(maps: np.ndarray | Tensor, true_paths: np.ndarray | Tensor, pred_paths: np.ndarray | Tensor | None = None,
               path: str | os.PathLike | None = None, *, max_maps: int = 8, weights: np.ndarray | Tensor | None = None,
               num_columns: int = 4, title: str | None = None) -> Path:
    """Save a PNG panel of maps with the true path (yellow) and, if given, the predicted path (magenta) drawn over.

    Args:
        maps: ``[N, H, W, 3]`` (uint8 in [0, 255] or float in [0, 1]) or ``[N, 3, H, W]`` float in [0, 1] (as
            :meth:`WarcraftSplit.as_tensors` returns); a NumPy array or a tensor.
        true_paths, pred_paths: ``[N, K, K]`` 0/1 indicators.
        path: where to write the PNG (required; written atomically).
        max_maps: how many maps (the first ones) to show.
        weights: ``[N, K, K]`` true costs; when given with ``pred_paths``, each title shows the predicted path's
            cost relative to the optimum and marks optimal predictions.
        num_columns: maps per row.
        title: a title over the panel.

    Needs matplotlib (``pip install 'discograd[plots]'``); uses the Agg canvas directly (no pyplot state).
    Returns the path written.
    """
    if path is None:
        raise TypeError("plot_paths: path (where to write the PNG) is required")
    max_maps = check_int(max_maps, "max_maps", minimum=1)
    num_columns = check_int(num_columns, "num_columns", minimum=1)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plot_paths needs matplotlib: pip install 'discograd[plots]'") from exc

    images = _as_images(maps)
    true_paths = _as_numpy(true_paths, "true_paths")
    pred_paths = None if pred_paths is None else _as_numpy(pred_paths, "pred_paths")
    weights = None if weights is None else _as_numpy(weights, "weights")
    n = min(len(images), max_maps)
    for name, array in (("true_paths", true_paths), ("pred_paths", pred_paths), ("weights", weights)):
        if array is not None and (array.ndim != 3 or len(array) < n):
            raise ValueError(f"plot_paths: {name} must be [N, K, K] with N >= {n}; got shape {array.shape}")
    if n == 0:
        raise ValueError("plot_paths: maps is empty")
    grid_size = true_paths.shape[-1]
    scale = images.shape[1] / grid_size  # pixels per cell

    columns = min(num_columns, n)
    rows = math.ceil(n / columns)
    fig = Figure(figsize=(2.6 * columns, 2.75 * rows + (0.4 if title else 0.1)), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index >= n:
            continue
        ax.imshow(images[index], interpolation="nearest")
        _draw_path(ax, true_paths[index], scale, color="#ffe000", linewidth=3.2, marker="o", markersize=3.5,
                   alpha=0.9, label="true")
        label = f"#{index}"
        if pred_paths is not None:
            _draw_path(ax, pred_paths[index], scale, color="#ff00d0", linewidth=1.6, marker="x", markersize=3.0,
                       alpha=0.95, label="predicted", linestyle="--")
            if weights is not None:
                predicted = float((weights[index] * pred_paths[index]).sum())
                optimal = float((weights[index] * true_paths[index]).sum())
                ratio = predicted / optimal if optimal > 0 else float("nan")
                mark = "optimal" if abs(predicted - optimal) <= 1e-6 * max(abs(optimal), 1e-12) else f"cost ×{ratio:.3f}"
                label += f"  {mark}"
        ax.set_title(label, fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles[:2], labels[:2], loc="lower center", ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _as_numpy(array: np.ndarray | Tensor, name: str) -> np.ndarray:
    if isinstance(array, Tensor):
        return array.detach().cpu().numpy()
    if isinstance(array, np.ndarray):
        return array
    raise TypeError(f"plot_paths: {name} must be a NumPy array or a tensor; got {type(array).__name__}")


def _as_images(maps: np.ndarray | Tensor) -> np.ndarray:
    """``[N, H, W, 3]`` float images in [0, 1] from channels-last uint8/float or channels-first float maps."""
    images = _as_numpy(maps, "maps")
    if images.ndim != 4 or 3 not in (images.shape[1], images.shape[3]):
        raise ValueError(f"plot_paths: maps must be [N, H, W, 3] or [N, 3, H, W]; got shape {images.shape}")
    if images.shape[3] != 3:
        images = images.transpose(0, 2, 3, 1)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return np.clip(images.astype(np.float32), 0.0, 1.0)


def _trace(mask: np.ndarray) -> list[tuple[int, int]] | None:
    """The cells of a simple 8-connected path from the top-left to the bottom-right cell, in order, or None."""
    k = mask.shape[-1]
    cells = {(int(i), int(j)) for i, j in zip(*np.nonzero(mask > 0.5))}
    if (0, 0) not in cells or (k - 1, k - 1) not in cells:
        return None
    order = [(0, 0)]
    seen = {(0, 0)}
    while order[-1] != (k - 1, k - 1):
        i, j = order[-1]
        nxt = [(i + di, j + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)
               if (di or dj) and (i + di, j + dj) in cells and (i + di, j + dj) not in seen]
        if len(nxt) != 1:
            return None
        order.append(nxt[0])
        seen.add(nxt[0])
    return order if len(order) == len(cells) else None


def _draw_path(ax: Any, mask: np.ndarray, scale: float, *, label: str, **style: Any) -> None:
    """A line through the cell centres of a path (markers only when the mask is not a simple path)."""
    order = _trace(mask)
    if order is None:
        cells = list(zip(*np.nonzero(mask > 0.5)))
        style = {**style, "linestyle": "none"}
    else:
        cells = order
    ys = [(i + 0.5) * scale - 0.5 for i, _ in cells]
    xs = [(j + 0.5) * scale - 0.5 for _, j in cells]
    ax.plot(xs, ys, label=label, **style)
