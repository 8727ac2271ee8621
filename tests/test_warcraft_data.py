"""Warcraft data: the procedural generator, its disk cache, the loader of the original layout, the path plot."""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from discograd.experiments.warcraft import (
    TERRAIN_COSTS,
    TERRAIN_TYPES,
    WarcraftData,
    generate_warcraft,
    load_warcraft,
    optimal_paths,
    path_costs,
    plot_paths,
)
from discograd.experiments.warcraft import data as warcraft_data

FIXTURE = Path(__file__).parent / "fixtures" / "warcraft"
FIXTURE_SEED = 2020  # see tests/fixtures/warcraft/README.md
COSTS = np.array([TERRAIN_COSTS[name] for name in TERRAIN_TYPES], dtype=np.float32)


@pytest.fixture(scope="module")
def data12() -> WarcraftData:
    return generate_warcraft(12, num_train=300, num_val=40, num_test=40, seed=0)


@pytest.fixture(scope="module")
def data18() -> WarcraftData:
    return generate_warcraft(18, num_train=60, num_val=10, num_test=10, seed=0)


def terrain_of(weights: np.ndarray) -> np.ndarray:
    """Terrain type indices from the costs (every type has its own cost)."""
    index = np.abs(weights[..., None] - COSTS).argmin(-1)
    assert np.array_equal(COSTS[index], weights)
    return index


def splits(data: WarcraftData):
    return [data.train, data.val, data.test]


# -- terrain table -------------------------------------------------------------------------------------------------


def test_terrain_costs_are_distinct_and_in_the_original_range():
    costs = list(TERRAIN_COSTS.values())
    assert 5 <= len(costs) <= 7
    assert len(set(costs)) == len(costs)
    assert min(costs) == 0.8 and max(costs) == 9.2
    assert TERRAIN_TYPES == tuple(TERRAIN_COSTS)


# -- determinism -----------------------------------------------------------------------------------------------------


def test_same_seed_same_arrays_and_different_seeds_differ():
    a = generate_warcraft(12, 5, 3, 3, seed=11)
    b = generate_warcraft(12, 5, 3, 3, seed=11)
    c = generate_warcraft(12, 5, 3, 3, seed=12)
    for sa, sb, sc in zip(splits(a), splits(b), splits(c)):
        for field in ("maps", "weights", "paths"):
            assert np.array_equal(getattr(sa, field), getattr(sb, field))
        assert not np.array_equal(sa.maps, sc.maps)
        assert not np.array_equal(sa.weights, sc.weights)
    # the splits are independent streams
    assert not np.array_equal(a.train.weights[:3], a.val.weights)
    assert not np.array_equal(a.val.weights, a.test.weights)


def test_fewer_maps_give_a_prefix_of_the_same_data():
    small = generate_warcraft(12, 3, 2, 1, seed=5)
    large = generate_warcraft(12, 200, 4, 3, seed=5)  # train crosses a chunk boundary
    for s, l in zip(splits(small), splits(large)):
        n = len(s)
        assert np.array_equal(s.maps, l.maps[:n]) and np.array_equal(s.weights, l.weights[:n])
        assert np.array_equal(s.paths, l.paths[:n])


def test_generator_still_makes_the_fixture():
    """The committed fixture was generated with generator version 1: a change to the maps needs a version bump."""
    if warcraft_data.GENERATOR_VERSION != 1:
        pytest.skip("the fixture was made by generator version 1")
    generated = generate_warcraft(12, 2, 2, 2, seed=FIXTURE_SEED)
    loaded = load_warcraft(FIXTURE, 12)
    for g, f in zip(splits(generated), splits(loaded)):
        assert np.array_equal(g.maps, f.maps)
        assert np.array_equal(g.weights, f.weights)
        assert np.array_equal(g.paths, f.paths)


# -- shapes, dtypes, ranges --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["data12", "data18"])
def test_shapes_dtypes_and_ranges(name, request):
    data = request.getfixturevalue(name)
    k = data.grid_size
    assert data.source == "generated" and data.cache_path is None
    for split, n in zip(splits(data), (len(data.train), len(data.val), len(data.test))):
        assert split.maps.shape == (n, 8 * k, 8 * k, 3) and split.maps.dtype == np.uint8
        assert split.weights.shape == (n, k, k) and split.weights.dtype == np.float32
        assert split.paths.shape == (n, k, k) and split.paths.dtype == np.uint8
        assert split.weights.min() >= 0.8 and split.weights.max() <= 9.2
        assert set(np.unique(split.weights)) <= set(COSTS)
        assert set(np.unique(split.paths)) <= {0, 1}
        assert (split.paths[:, 0, 0] == 1).all() and (split.paths[:, -1, -1] == 1).all()
        # a path has at least K cells (8-neighbour moves) and uses the full pixel range of the images
        assert split.paths.sum((1, 2)).min() >= k
        assert split.maps.std() > 20

    maps, weights, paths = data.val.as_tensors()
    n = len(data.val)
    assert maps.shape == (n, 3, 8 * k, 8 * k) and maps.dtype == torch.float32 and maps.is_contiguous()
    assert 0 <= maps.min() and maps.max() <= 1
    assert torch.equal(maps[:, 1] * 255, torch.from_numpy(data.val.maps[..., 1]).float())
    assert weights.dtype == paths.dtype == torch.float32 and weights.shape == paths.shape == (n, k, k)
    assert torch.equal(weights, torch.from_numpy(data.val.weights))


def test_every_terrain_type_occurs(data12):
    frequency = np.bincount(terrain_of(data12.train.weights).ravel(), minlength=len(COSTS)) / data12.train.weights.size
    assert frequency.min() > 0.03, dict(zip(TERRAIN_TYPES, frequency.round(3)))


# -- spatial coherence --------------------------------------------------------------------------------------------------


def same_neighbour_fraction(terrain: np.ndarray) -> float:
    """The fraction of horizontally or vertically adjacent cell pairs of the same terrain type."""
    same = np.concatenate([(terrain[:, 1:, :] == terrain[:, :-1, :]).reshape(len(terrain), -1),
                           (terrain[:, :, 1:] == terrain[:, :, :-1]).reshape(len(terrain), -1)], axis=1)
    return float(same.mean())


@pytest.mark.parametrize("name", ["data12", "data18"])
def test_regions_are_spatially_coherent(name, request):
    """Neighbours share their terrain far more often than when the cells of each map are shuffled (i.i.d.)."""
    terrain = terrain_of(request.getfixturevalue(name).train.weights)
    n, k, _ = terrain.shape
    rng = np.random.default_rng(0)
    shuffled = rng.permuted(terrain.reshape(n, k * k), axis=1).reshape(n, k, k)
    coherent, baseline = same_neighbour_fraction(terrain), same_neighbour_fraction(shuffled)
    assert coherent > 0.5
    assert coherent > 2 * baseline, (coherent, baseline)


# -- labels -----------------------------------------------------------------------------------------------------------


def dijkstra_cost(weights: np.ndarray) -> float:
    """Optimal vertex-cost path cost by scipy's Dijkstra on the 8-neighbour grid (edge u -> v costs weights[v])."""
    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    sparse = pytest.importorskip("scipy.sparse")
    k = weights.shape[0]
    index = np.arange(k * k).reshape(k, k)
    heads, tails = [], []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                src = index[max(0, -di): k - max(0, di), max(0, -dj): k - max(0, dj)]
                dst = index[max(0, di): k - max(0, -di), max(0, dj): k - max(0, -dj)]
                tails.append(src.ravel())
                heads.append(dst.ravel())
    tails, heads = np.concatenate(tails), np.concatenate(heads)
    graph = sparse.csr_matrix((weights.ravel()[heads].astype(np.float64), (tails, heads)), shape=(k * k, k * k))
    distance = csgraph.dijkstra(graph, directed=True, indices=0)
    return float(distance[-1] + weights[0, 0])


def assert_simple_path(path: np.ndarray) -> None:
    """Endpoints have one path neighbour, other path cells two (8-neighbourhood)."""
    k = path.shape[0]
    padded = np.pad(path.astype(int), 1)
    neighbours = sum(np.roll(np.roll(padded, di, 0), dj, 1) for di in (-1, 0, 1) for dj in (-1, 0, 1)
                     if di or dj)[1:-1, 1:-1]
    degree = neighbours[path == 1]
    ends = {(0, 0), (k - 1, k - 1)}
    cells = list(zip(*np.nonzero(path)))
    for (i, j), d in zip(cells, degree):
        assert d == (1 if (i, j) in ends else 2), ((i, j), d)


@pytest.mark.parametrize("name", ["data12", "data18"])
def test_labels_are_optimal_paths(name, request):
    split = request.getfixturevalue(name).test
    costs = path_costs(split.weights, split.paths)
    for n in range(10):
        assert_simple_path(split.paths[n])
        assert costs[n] == pytest.approx(dijkstra_cost(split.weights[n]), rel=1e-9)
    # and the helper recomputes the same labels
    assert np.array_equal(optimal_paths(split.weights), split.paths)


# -- tiles ------------------------------------------------------------------------------------------------------------


def test_tiles_are_separable_by_mean_colour(data12):
    """A nearest-class-mean classifier on each cell's mean colour, fit on half the maps, labels the rest."""
    split = data12.train
    n, k = len(split), data12.grid_size
    colour = split.maps.reshape(n, k, 8, k, 8, 3).mean(axis=(2, 4)).reshape(-1, 3)
    terrain = terrain_of(split.weights).ravel()
    half = (n // 2) * k * k
    means = np.stack([colour[:half][terrain[:half] == t].mean(0) for t in range(len(COSTS))])
    predicted = ((colour[half:, None, :] - means) ** 2).sum(-1).argmin(-1)
    accuracy = (predicted == terrain[half:]).mean()
    assert accuracy > 0.99, accuracy
    # the class means are far apart compared with the spread of a cell's mean colour
    spread = max(colour[terrain == t].std(0).max() for t in range(len(COSTS)))
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)[~np.eye(len(COSTS), dtype=bool)]
    assert gaps.min() > 3 * spread


# -- cache ------------------------------------------------------------------------------------------------------------


def test_cache_round_trip(tmp_path, monkeypatch):
    first = generate_warcraft(12, 4, 2, 3, seed=3, cache_dir=tmp_path)
    folder = tmp_path / "warcraft_12x12_seed3_n4-2-3"
    assert first.cache_path == folder and first.source == "generated"
    names = {f"{s}_{kind}.npy" for s in ("train", "val", "test") for kind in ("maps", "vertex_weights", "shortest_paths")}
    assert {p.name for p in folder.iterdir()} == names | {"meta.json"}
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["generator_version"] == warcraft_data.GENERATOR_VERSION
    assert (meta["seed"], meta["grid_size"], meta["num_train"], meta["num_val"], meta["num_test"]) == (3, 12, 4, 2, 3)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temporary folder left behind
    mask = os.umask(0)
    os.umask(mask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~mask  # readable by others, not mkdtemp's 0700
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    def no_generation(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(warcraft_data, "_generate_split", no_generation)
    second = generate_warcraft(12, 4, 2, 3, seed=3, cache_dir=str(tmp_path))
    for a, b in zip(splits(first), splits(second)):
        assert np.array_equal(a.maps, b.maps) and np.array_equal(a.weights, b.weights)
        assert np.array_equal(a.paths, b.paths)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes
    # the cache folder is in the original layout: the loader reads it too
    loaded = load_warcraft(folder, 12)
    assert np.array_equal(loaded.test.maps, first.test.maps)
    monkeypatch.undo()

    # a stale cache (another generator version) is regenerated and replaced
    meta["generator_version"] = -1
    (folder / "meta.json").write_text(json.dumps(meta))
    calls = []
    original = warcraft_data._generate_split

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(warcraft_data, "_generate_split", counting)
    third = generate_warcraft(12, 4, 2, 3, seed=3, cache_dir=tmp_path)
    assert len(calls) == 3
    assert json.loads((folder / "meta.json").read_text())["generator_version"] == warcraft_data.GENERATOR_VERSION
    assert np.array_equal(third.train.maps, first.train.maps)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


# -- loader -----------------------------------------------------------------------------------------------------------


def test_load_fixture_in_the_original_layout():
    from_parent = load_warcraft(FIXTURE, 12)
    from_folder = load_warcraft(FIXTURE / "12x12", 12)
    assert from_parent.source == from_folder.source == str(FIXTURE / "12x12")
    assert from_parent.grid_size == 12
    for a, b in zip(splits(from_parent), splits(from_folder)):
        assert len(a) == 2
        assert a.maps.shape == (2, 96, 96, 3) and a.maps.dtype == np.uint8
        assert a.weights.shape == (2, 12, 12) and a.weights.dtype == np.float32
        assert a.paths.shape == (2, 12, 12) and a.paths.dtype == np.uint8
        assert np.array_equal(a.maps, b.maps)
        # the shipped labels are optimal for the shipped costs
        assert np.allclose(path_costs(a.weights, a.paths), path_costs(a.weights, optimal_paths(a.weights)))


@pytest.fixture
def fixture_copy(tmp_path) -> Path:
    folder = tmp_path / "12x12"
    shutil.copytree(FIXTURE / "12x12", folder)
    return folder


def test_loader_names_file_and_shapes_on_a_wrong_shape(fixture_copy):
    np.save(fixture_copy / "train_maps.npy", np.zeros((2, 95, 96, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"train_maps\.npy.*\(N, 96, 96, 3\).*found shape \(2, 95, 96, 3\)"):
        load_warcraft(fixture_copy, 12)


def test_loader_wrong_grid_size(fixture_copy):
    with pytest.raises(ValueError, match=r"train_maps\.npy.*\(N, 144, 144, 3\).*found shape \(2, 96, 96, 3\)"):
        load_warcraft(fixture_copy, 18)


def test_loader_errors(fixture_copy, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_warcraft(tmp_path / "nowhere", 12)
    with pytest.raises(FileNotFoundError, match="neither train_maps.npy nor a 12x12 subfolder"):
        load_warcraft(_empty(tmp_path), 12)

    paths = np.load(fixture_copy / "val_shortest_paths.npy")
    np.save(fixture_copy / "val_shortest_paths.npy", paths * 2)
    with pytest.raises(ValueError, match=r"val_shortest_paths\.npy.*only 0 and 1"):
        load_warcraft(fixture_copy, 12)
    np.save(fixture_copy / "val_shortest_paths.npy", paths[:1])
    with pytest.raises(ValueError, match="different numbers of maps"):
        load_warcraft(fixture_copy, 12)
    np.save(fixture_copy / "val_shortest_paths.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"val_shortest_paths\.npy.*pickles are disabled"):
        load_warcraft(fixture_copy, 12)
    with open(fixture_copy / "val_shortest_paths.npy", "wb") as f:
        np.savez(f, paths=paths)
    with pytest.raises(ValueError, match=r"val_shortest_paths\.npy.*npz archive"):
        load_warcraft(fixture_copy, 12)
    np.save(fixture_copy / "val_shortest_paths.npy", paths)

    weights = np.load(fixture_copy / "test_vertex_weights.npy")
    bad = weights.copy()
    bad[0, 3, 3] = np.nan
    np.save(fixture_copy / "test_vertex_weights.npy", bad)
    with pytest.raises(ValueError, match=r"test_vertex_weights\.npy.*finite"):
        load_warcraft(fixture_copy, 12)
    np.save(fixture_copy / "test_vertex_weights.npy", weights)

    (fixture_copy / "test_maps.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing file .*test_maps\.npy"):
        load_warcraft(fixture_copy, 12)


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_loader_converts_other_dtypes(fixture_copy):
    """Maps stored as whole floats, costs as float64 and paths as floats or bools are accepted and converted."""
    original = load_warcraft(fixture_copy, 12)
    np.save(fixture_copy / "train_maps.npy", original.train.maps.astype(np.float64))
    np.save(fixture_copy / "train_vertex_weights.npy", original.train.weights.astype(np.float64))
    np.save(fixture_copy / "train_shortest_paths.npy", original.train.paths.astype(np.float32))
    np.save(fixture_copy / "val_shortest_paths.npy", original.val.paths.astype(bool))
    converted = load_warcraft(fixture_copy, 12)
    assert converted.train.maps.dtype == np.uint8 and np.array_equal(converted.train.maps, original.train.maps)
    assert converted.train.weights.dtype == np.float32 and np.array_equal(converted.train.weights, original.train.weights)
    assert converted.train.paths.dtype == converted.val.paths.dtype == np.uint8
    assert np.array_equal(converted.val.paths, original.val.paths)
    np.save(fixture_copy / "train_maps.npy", original.train.maps / 255.0)
    with pytest.raises(ValueError, match=r"train_maps\.npy.*whole pixel values in \[0, 255\]"):
        load_warcraft(fixture_copy, 12)


# -- arguments, speed, plot ------------------------------------------------------------------------------------------


def test_argument_validation(tmp_path):
    with pytest.raises(ValueError, match="grid_size must be >= 2"):
        generate_warcraft(1, 1, 1, 1)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        generate_warcraft(12, 1, 1, 1, seed=-1)
    with pytest.raises(TypeError, match="num_train must be an integer"):
        generate_warcraft(12, 1.5, 1, 1)
    with pytest.raises(ValueError, match="split must be one of"):
        generate_warcraft(12, 1, 1, 1).split("training")


def test_empty_splits():
    data = generate_warcraft(12, 2, 0, 0)
    assert len(data.val) == 0 and data.val.maps.shape == (0, 96, 96, 3) and data.val.paths.shape == (0, 12, 12)


def test_generating_1000_maps_is_fast():
    generate_warcraft(12, 1, 0, 0)  # the solver's kernel is loaded (compiled on a fresh machine) outside the clock
    start = time.perf_counter()
    data = generate_warcraft(12, 1_000, 0, 0, seed=1)
    elapsed = time.perf_counter() - start
    assert len(data.train) == 1_000
    assert elapsed < 6.0, f"1,000 maps of 12 x 12 took {elapsed:.2f} s (about 0.3 s expected)"


def test_plot_paths(tmp_path, data12):
    pytest.importorskip("matplotlib")
    split = data12.test
    maps, weights, paths = split.as_tensors()
    predicted = optimal_paths(np.where(np.arange(12) < 6, split.weights, 1.0))  # wrong on half of each map
    out = plot_paths(maps, paths, torch.from_numpy(predicted), tmp_path / "plots" / "panel.png", max_maps=6,
                     weights=weights, title="test")
    assert out == tmp_path / "plots" / "panel.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out2 = plot_paths(split.maps, split.paths, path=tmp_path / "true_only.png", max_maps=2)
    assert out2.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["panel.png", "true_only.png"]
    with pytest.raises(TypeError, match="path"):
        plot_paths(split.maps, split.paths)
    with pytest.raises(ValueError, match="true_paths must be"):
        plot_paths(split.maps, split.paths[0], path=tmp_path / "x.png")
