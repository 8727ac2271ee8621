r"""Data for the learning-to-explain experiment: the four synthetic tabular data sets of L2X, a synthetic review
task with annotated spans, and a loader for the original BeerAdvocate files.

Tabular data sets (Chen, Song, Wainwright, Jordan, "Learning to Explain", ICML 2018, arXiv:1802.07814,
Section 5.1), ``X ~ N(0, I_10)`` and ``P(Y = 1 | X) = σ(f(X))`` (the logistic of ``f``):

- ``xor``: ``f = x1 · x2``; relevant features {1, 2} (k = 2).
- ``orange_skin``: ``f = Σ_{i ≤ 4} x_i² − 4``; relevant {1, 2, 3, 4} (k = 4).
- ``nonlinear_additive``: ``f = −100 sin(2 x1) + 2 |x2| + x3 + exp(−x4)``; relevant {1, 2, 3, 4} (k = 4).
- ``switch``: ``x10`` is drawn from an equal mixture of ``N(3, 1)`` and ``N(−3, 1)``; from the component centred
  at +3, ``f`` is the orange-skin function of ``x1..x4``, otherwise the nonlinear-additive function of
  ``x5..x8``; relevant {1..4, 10} or {5..8, 10} per instance (k = 5).

These are the functions as the paper states them. (The authors' released code differs: it uses
``P(Y = 1) = 1 / (1 + exp(f))``, the mirror image, which changes no feature's relevance, and
``−100 sin(0.2 x1) + |x2| + x3 + exp(−x4) − 2.4`` for the additive model.) Features are numbered from 1 in
the text and from 0 in arrays.

Synthetic reviews (:func:`generate_reviews`): token sequences whose rating depends only on the words inside
annotated spans; see its docstring. BeerAdvocate (:func:`load_beer`): the files of Lei, Barzilay, Jaakkola (2016)
used by L2X and I-MLE; the format is in its docstring.

Held-out data of the text tasks. The I-MLE code (tf-imle ``L2X/L2X-experiments-neurips.ipynb``, the training cell)
splits the held-out reviews in half at random for every repetition, ``train_test_split(..., test_size=0.5,
random_state=repetition)``: one half validates (the best epoch), the other is the test set of the MSE; the
annotated reviews give the subset precision. :class:`L2XData` holds such a set in ``heldout`` (and the annotated
reviews in ``annotated``); :meth:`L2XData.split_heldout` makes the two halves for one seed (:func:`halve`).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BEER_ASPECTS",
    "RELEVANT_FEATURES",
    "TABULAR_TASKS",
    "L2XData",
    "TabularSplit",
    "TextSplit",
    "generate_reviews",
    "generate_tabular",
    "halve",
    "load_beer",
    "read_annotations",
    "read_embeddings",
    "read_reviews",
    "tabular_logits",
]

#: the four synthetic tabular tasks of L2X (Chen et al., 2018)
TABULAR_TASKS = ("xor", "orange_skin", "nonlinear_additive", "switch")
#: the relevant features (0-based) of each tabular task; switch: per instance, see :func:`generate_tabular`
RELEVANT_FEATURES = {"xor": (0, 1), "orange_skin": (0, 1, 2, 3), "nonlinear_additive": (0, 1, 2, 3),
                     "switch_orange": (0, 1, 2, 3, 9), "switch_additive": (4, 5, 6, 7, 9)}
NUM_FEATURES = 10
#: the five aspects of the BeerAdvocate reviews; aspect ``a`` (0..4) is ``BEER_ASPECTS[a]``
BEER_ASPECTS = ("appearance", "aroma", "palate", "taste", "overall")


@dataclass
class TabularSplit:
    """``x`` float32 ``[N, 10]``, ``prob`` = P(Y=1|x) float32 ``[N]``, ``y`` sampled labels int64 ``[N]``,
    ``relevant`` bool ``[N, 10]`` (the ground-truth features of each instance)."""

    x: np.ndarray
    prob: np.ndarray
    y: np.ndarray
    relevant: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class TextSplit:
    """``tokens`` int64 ``[N, L]`` (0 = padding), ``rating`` float32 ``[N]`` in [0, 1], ``spans`` bool ``[N, L]``
    (tokens inside annotated spans; ``None`` where the split has no annotations)."""

    tokens: np.ndarray
    rating: np.ndarray
    spans: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class L2XData:
    """The splits and, for text, the frozen embedding matrix ``[V, D]`` (row 0: padding) and the vocabulary.

    ``train``, ``val``, ``test``: the splits a run uses. ``heldout`` (text): a held-out set that
    :meth:`split_heldout` halves into ``val`` and ``test`` per seed, as the original code does; while it is set,
    ``val`` and ``test`` may be ``None``. ``annotated`` (beer): the reviews with annotated spans on which the subset
    precision is measured (``None``: on ``test``, whose spans are then needed).
    """

    task: str
    train: Any
    val: Any
    test: Any
    embedding: np.ndarray | None = None
    vocabulary: list[str] | None = None
    source: str = "generated"
    info: dict[str, Any] = field(default_factory=dict)
    heldout: Any = None
    annotated: Any = None

    def split_heldout(self, seed: int) -> L2XData:
        """A copy whose ``val`` and ``test`` are the two halves of ``heldout`` for ``seed`` (:func:`halve`); the
        data itself when there is no ``heldout``."""
        if self.heldout is None:
            return self
        val, test = halve(self.heldout, seed)
        return replace(self, val=val, test=test, heldout=None)


def _take(split: TextSplit, index: np.ndarray) -> TextSplit:
    return TextSplit(split.tokens[index], split.rating[index], None if split.spans is None else split.spans[index])


def halve(split: TextSplit, seed: int) -> tuple[TextSplit, TextSplit]:
    """Split a held-out set at random into ``(val, test)``, ``test`` with ``ceil(n / 2)`` reviews and ``val`` with
    the rest, as the original's ``train_test_split(X, Y, test_size=0.5, random_state=seed)`` (sizes alike; the
    permutation is NumPy's, drawn from ``seed``, not scikit-learn's). Both keep the held-out order.

    >>> val, test = halve(TextSplit(np.arange(10).reshape(5, 2), np.arange(5, dtype=np.float32)), seed=0)
    >>> len(val), len(test), sorted(val.rating.tolist() + test.rating.tolist())
    (2, 3, [0.0, 1.0, 2.0, 3.0, 4.0])
    """
    n = len(split)
    if n < 2:
        raise ValueError(f"the held-out set needs at least 2 reviews to be split in half; got {n}")
    order = np.random.default_rng([seed, 13]).permutation(n)
    n_test = -(-n // 2)
    return _take(split, np.sort(order[n_test:])), _take(split, np.sort(order[:n_test]))


# ---------------------------------------------------------------------------------------------------
# tabular data sets (L2X, Section 5.1)
# ---------------------------------------------------------------------------------------------------


def _orange(x: np.ndarray) -> np.ndarray:
    return np.sum(x[:, :4] ** 2, axis=1) - 4.0


def _additive(x: np.ndarray) -> np.ndarray:
    return -100.0 * np.sin(2.0 * x[:, 0]) + 2.0 * np.abs(x[:, 1]) + x[:, 2] + np.exp(-x[:, 3])


def tabular_logits(task: str, x: np.ndarray, orange_component: np.ndarray | None = None) -> np.ndarray:
    """``f(x)`` of a tabular task (``P(Y = 1 | x) = σ(f(x))``); ``switch`` needs the mixture component
    (``True``: the component centred at +3, orange skin on x1..x4)."""
    if task == "xor":
        return x[:, 0] * x[:, 1]
    if task == "orange_skin":
        return _orange(x)
    if task == "nonlinear_additive":
        return _additive(x)
    if task == "switch":
        if orange_component is None:
            raise ValueError("tabular_logits('switch', ...) needs orange_component (bool [N])")
        return np.where(orange_component, _orange(x), _additive(x[:, 4:8]))
    raise ValueError(f"task must be one of {list(TABULAR_TASKS)}; got {task!r}")


def _tabular_split(task: str, n: int, rng: np.random.Generator) -> TabularSplit:
    x = rng.standard_normal((n, NUM_FEATURES))
    relevant = np.zeros((n, NUM_FEATURES), dtype=bool)
    component = None
    if task == "switch":
        component = rng.random(n) < 0.5
        x[:, 9] += np.where(component, 3.0, -3.0)
        relevant[np.ix_(component, RELEVANT_FEATURES["switch_orange"])] = True
        relevant[np.ix_(~component, RELEVANT_FEATURES["switch_additive"])] = True
    else:
        relevant[:, list(RELEVANT_FEATURES[task])] = True
    f = tabular_logits(task, x, component)
    prob = 1.0 / (1.0 + np.exp(-np.clip(f, -50.0, 50.0)))
    y = (rng.random(n) < prob).astype(np.int64)
    return TabularSplit(x.astype(np.float32), prob.astype(np.float32), y, relevant)


def generate_tabular(task: str, num_train: int, num_val: int, num_test: int, *, seed: int = 0) -> L2XData:
    """The three splits of a tabular task, from one NumPy generator seeded by ``seed`` (train, then val, then test)."""
    if task not in TABULAR_TASKS:
        raise ValueError(f"task must be one of {list(TABULAR_TASKS)}; got {task!r}")
    for name, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    rng = np.random.default_rng([seed, 7])
    splits = [_tabular_split(task, n, rng) for n in (num_train, num_val, num_test)]
    return L2XData(task, *splits, source=f"generated {task}, seed {seed}")


# ---------------------------------------------------------------------------------------------------
# synthetic reviews with annotated spans
# ---------------------------------------------------------------------------------------------------


def generate_reviews(num_train: int, num_val: int, num_test: int, *, seq_length: int = 200, vocab_size: int = 2000,
                     embedding_dim: int = 50, num_aspect_words: int = 100, num_spans: int = 3, span_length: int = 6,
                     seed: int = 0) -> L2XData:
    r"""A synthetic stand-in for the BeerAdvocate aroma task: the rating depends only on annotated spans.

    Vocabulary (``vocab_size`` ids, 0 = padding): ``num_aspect_words`` *target* words (ids 1..A) and as many
    *distractor* words (ids A+1..2A), each with a sentiment value ``v ∈ [0, 1]``; every other id is a filler
    word. A review is ``seq_length`` tokens long: filler words, with ``num_spans`` annotated spans of
    ``span_length`` tokens (filler words with two target words each) and as many distractor spans (two
    distractor words each) at random non-overlapping places. The rating is the mean value of the target words
    of the review, in [0, 1]; the annotation marks every token of the target spans (like the sentence-level
    human annotations of BeerAdvocate, whole spans are marked, not only the decisive words).

    Embeddings (``[vocab_size, embedding_dim]``, row 0 zero): a random Gaussian vector per word, plus for
    target words an "aroma" direction and for distractor words another "aspect" direction, and for both
    ``(2v − 1)`` times a **shared** sentiment direction. So the sentiment of distractor words looks the same
    as that of target words: a predictor that sees every token is misled, and one that sees only the right
    tokens can read the rating linearly. Subset precision (the fraction of selected tokens inside the target
    spans) is thus measurable, and high precision is what a good explainer needs.
    """
    for name, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test),
                        ("seq_length", seq_length), ("embedding_dim", embedding_dim),
                        ("num_aspect_words", num_aspect_words), ("num_spans", num_spans), ("span_length", span_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    if span_length < 2:
        raise ValueError(f"span_length must be >= 2 (two sentiment words per span); got {span_length}")
    if 2 * num_spans * span_length > seq_length:
        raise ValueError(f"seq_length must hold 2 * num_spans * span_length = {2 * num_spans * span_length} span "
                         f"tokens; got {seq_length}")
    if vocab_size < 2 * num_aspect_words + 11:
        raise ValueError(f"vocab_size must be >= 2 * num_aspect_words + 11 (at least 10 filler words); got {vocab_size}")
    if embedding_dim < 3:
        raise ValueError(f"embedding_dim must be >= 3; got {embedding_dim}")
    rng = np.random.default_rng([seed, 11])
    a = num_aspect_words
    values = rng.random(2 * a + 1)  # index = word id (0 unused)
    embedding = rng.standard_normal((vocab_size, embedding_dim)) * (0.5 / math.sqrt(embedding_dim))
    directions = np.linalg.qr(rng.standard_normal((embedding_dim, 3)))[0].T  # orthonormal: target, distractor, sentiment
    embedding[1:a + 1] += directions[0] + (2 * values[1:a + 1, None] - 1) * directions[2]
    embedding[a + 1:2 * a + 1] += directions[1] + (2 * values[a + 1:2 * a + 1, None] - 1) * directions[2]
    embedding[0] = 0.0
    filler = np.arange(2 * a + 1, vocab_size)

    def split(n: int) -> TextSplit:
        tokens = rng.choice(filler, size=(n, seq_length))
        spans = np.zeros((n, seq_length), dtype=bool)
        rating = np.zeros(n)
        slots = seq_length // span_length
        for i in range(n):
            chosen = rng.choice(slots, size=2 * num_spans, replace=False) * span_length
            for j, start in enumerate(chosen):
                target = j < num_spans
                words = rng.integers(1, a + 1, size=2) if target else rng.integers(a + 1, 2 * a + 1, size=2)
                places = start + rng.choice(span_length, size=2, replace=False)
                tokens[i, places] = words
                if target:
                    spans[i, start:start + span_length] = True
                    rating[i] += values[words].sum()
            rating[i] /= 2 * num_spans
        return TextSplit(tokens.astype(np.int64), rating.astype(np.float32), spans)

    splits = [split(n) for n in (num_train, num_val, num_test)]
    vocabulary = ["<pad>"] + [f"aroma{i}" for i in range(1, a + 1)] + [f"other{i}" for i in range(1, a + 1)] + \
        [f"w{i}" for i in range(2 * a + 1, vocab_size)]
    return L2XData("reviews", *splits, embedding=embedding.astype(np.float32), vocabulary=vocabulary,
                   source=f"generated reviews, seed {seed}",
                   info={"span_fraction": float(splits[2].spans.mean())})


# ---------------------------------------------------------------------------------------------------
# BeerAdvocate (Lei et al. 2016 files, as used by L2X and I-MLE)
# ---------------------------------------------------------------------------------------------------


def _open_text(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        yield from f


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{folder} has no {name} (nor {name}.gz); see discograd.experiments.l2x.load_beer")


def read_reviews(path: str | os.PathLike, aspect: int, *, limit: int | None = None) -> tuple[list[list[str]], list[float]]:
    """Read ``reviews.aspect{a}.{train,heldout}.txt[.gz]``: per line, the ratings of the five aspects (floats in
    [0, 1], separated by spaces), a TAB, then the review's tokens separated by spaces. Returns the token lists and
    the ratings of ``aspect``; a malformed line raises ``ValueError`` naming the file and the line."""
    path = Path(path)
    tokens, ratings = [], []
    for number, line in enumerate(_open_text(path), start=1):
        line = line.rstrip("\n").rstrip("\r")
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{number}: expected '<5 ratings>\\t<tokens>' (a TAB after the ratings); got "
                             f"{line[:60]!r}")
        head, text = line.split("\t", 1)
        try:
            values = [float(v) for v in head.split()]
        except ValueError:
            raise ValueError(f"{path}:{number}: the ratings must be floats separated by spaces; got {head[:60]!r}") from None
        if len(values) <= aspect:
            raise ValueError(f"{path}:{number}: expected a rating for aspect {aspect} (5 ratings); got {len(values)}")
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            raise ValueError(f"{path}:{number}: ratings must lie in [0, 1]; got {values}")
        tokens.append(text.split())
        ratings.append(values[aspect])
        if limit is not None and len(tokens) >= limit:
            break
    return tokens, ratings


def read_annotations(path: str | os.PathLike, aspect: int, *,
                     limit: int | None = None) -> tuple[list[list[str]], list[float], list[list[tuple[int, int]]]]:
    """Read ``annotations.json``: one JSON object per line with ``"x"`` (the tokens), ``"y"`` (the five ratings)
    and ``"0"`` .. ``"4"`` (per aspect, a list of ``[start, end)`` token spans). Returns tokens, the ratings of
    ``aspect`` and its spans."""
    path = Path(path)
    tokens, ratings, spans = [], [], []
    for number, line in enumerate(_open_text(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not a JSON object ({exc.msg})") from None
        if not isinstance(record, dict) or not {"x", "y", str(aspect)} <= set(record):
            raise ValueError(f"{path}:{number}: expected an object with keys 'x', 'y' and '{aspect}'")
        x, y, pairs = record["x"], record["y"], record[str(aspect)]
        if not isinstance(x, list) or not all(isinstance(t, str) for t in x):
            raise ValueError(f"{path}:{number}: 'x' must be a list of tokens")
        if not isinstance(y, list) or len(y) <= aspect or not isinstance(y[aspect], (int, float)):
            raise ValueError(f"{path}:{number}: 'y' must be a list of 5 ratings")
        checked = []
        for pair in pairs:
            if (not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(v, int) for v in pair)
                    or not 0 <= pair[0] <= pair[1] <= len(x)):
                raise ValueError(f"{path}:{number}: spans of aspect {aspect} must be [start, end) pairs with "
                                 f"0 <= start <= end <= {len(x)}; got {pair!r}")
            checked.append((pair[0], pair[1]))
        tokens.append(x)
        ratings.append(float(y[aspect]))
        spans.append(checked)
        if limit is not None and len(tokens) >= limit:
            break
    return tokens, ratings, spans


def read_embeddings(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read a text embedding file: per line a word followed by its floats, separated by spaces (an optional
    word2vec header line ``<count> <dim>`` is skipped). Returns the words and a float32 ``[V, D]`` matrix."""
    path = Path(path)
    words, rows, dim = [], [], None
    for number, line in enumerate(_open_text(path), start=1):
        parts = line.rstrip().split(" ")
        if len(parts) < 2:
            if line.strip():
                raise ValueError(f"{path}:{number}: expected a word followed by floats; got {line[:60]!r}")
            continue
        if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            continue
        try:
            row = [float(v) for v in parts[1:]]
        except ValueError:
            raise ValueError(f"{path}:{number}: the values after the word must be floats") from None
        if dim is None:
            dim = len(row)
        elif len(row) != dim:
            raise ValueError(f"{path}:{number}: every vector must have {dim} values; got {len(row)}")
        words.append(parts[0])
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no vectors")
    return words, np.asarray(rows, dtype=np.float32)


PADDINGS = ("pre", "post")


def _encode(docs: list[list[str]], index: dict[str, int], max_length: int, unknown: int,
            padding: str) -> tuple[np.ndarray, np.ndarray]:
    """Token ids ``[N, max_length]`` (the first ``max_length`` tokens of each review; ``unknown`` for words not in
    ``index``) and, per review, the column of its first token (``padding="pre"``: zeros before the review)."""
    out = np.zeros((len(docs), max_length), dtype=np.int64)
    offsets = np.zeros(len(docs), dtype=np.int64)
    for i, doc in enumerate(docs):
        ids = [index.get(t, unknown) for t in doc[:max_length]]
        offsets[i] = max_length - len(ids) if padding == "pre" else 0
        out[i, offsets[i]:offsets[i] + len(ids)] = ids
    return out, offsets


def load_beer(data_dir: str | os.PathLike, *, aspect: int = 1, max_length: int = 350,
              embedding_file: str = "review+wiki.filtered.200.txt", num_train: int | None = None,
              num_val: int | None = None, num_test: int | None = None, padding: str = "pre") -> L2XData:
    r"""The BeerAdvocate data of Lei et al. (2016) as the I-MLE code reads it (Table 1: aspect 1, aroma).

    ``data_dir`` holds (each file may also be gzipped, ``.gz``):

    - ``reviews.aspect{aspect}.train.txt`` (train) and ``reviews.aspect{aspect}.heldout.txt`` (held out: split in
      half into validation and test per seed, :meth:`L2XData.split_heldout`): one review per line, the five
      aspect ratings in [0, 1] separated by spaces, a TAB, the tokens separated by spaces (:func:`read_reviews`);
    - ``annotations.json`` (994 reviews, the subset precision): one JSON object per line with ``"x"`` (tokens),
      ``"y"`` (five ratings) and ``"0"`` .. ``"4"`` (annotated ``[start, end)`` spans per aspect)
      (:func:`read_annotations`);
    - the word embeddings, ``embedding_file`` (text: a word and its floats per line; the 200-dimensional
      ``review+wiki.filtered.200.txt`` of the original release) (:func:`read_embeddings`).

    As the original (tf-imle ``L2X/L2X-experiments-neurips.ipynb``, the data and embedding cells; torch-adaptive-imle
    ``cli/l2x-cli.py``): the vocabulary is the training reviews' words (id 0 ``<PAD>``, 1 ``<START>``, 2 ``<UNK>``,
    then every training word in order of first occurrence); a word's embedding row is its vector in the embedding
    file, zero when the file lacks it; held-out words outside the vocabulary become ``<UNK>`` (2) and annotated
    ones become 0, like padding, so that a selected unknown word counts as neither right nor selected in the
    precision (the original's ``word_to_id.get(token, 0)``). Each review keeps its first ``max_length`` tokens;
    ``padding="pre"`` (the original's) puts the zeros before the review, ``"post"`` after it; the annotated spans
    move with the tokens. ``num_train``, ``num_val`` (held-out reviews) and ``num_test`` (annotated reviews)
    keep the first reviews of a file (``None``: all).
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"data_dir {folder} is not a folder")
    if aspect not in range(5):
        raise ValueError(f"aspect must be 0..4 ({', '.join(BEER_ASPECTS)}); got {aspect!r}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {list(PADDINGS)}; got {padding!r}")
    texts, ratings = [], []
    for name, limit in (("train", num_train), ("heldout", num_val)):
        docs, values = read_reviews(_find(folder, f"reviews.aspect{aspect}.{name}.txt"), aspect, limit=limit)
        if not docs:
            raise ValueError(f"reviews.aspect{aspect}.{name}.txt in {folder} holds no reviews")
        texts.append(docs)
        ratings.append(np.asarray(values, dtype=np.float32))
    vocabulary = ["<PAD>", "<START>", "<UNK>"]
    index: dict[str, int] = {}
    for doc in texts[0]:
        for token in doc:
            if token not in index:
                index[token] = len(vocabulary)
                vocabulary.append(token)
    words, vectors = read_embeddings(_find(folder, embedding_file))
    embedding = np.zeros((len(vocabulary), vectors.shape[1]), dtype=np.float32)
    found = 0
    for word, vector in zip(words, vectors):
        row = index.get(word)
        if row is not None:
            embedding[row] = vector
            found += 1
    train = TextSplit(_encode(texts[0], index, max_length, 2, padding)[0], ratings[0])
    heldout = TextSplit(_encode(texts[1], index, max_length, 2, padding)[0], ratings[1])
    docs, values, pairs = read_annotations(_find(folder, "annotations.json"), aspect, limit=num_test)
    if not docs:
        raise ValueError(f"annotations.json in {folder} holds no reviews")
    tokens, offsets = _encode(docs, index, max_length, 0, padding)
    spans = np.zeros((len(docs), max_length), dtype=bool)
    for i, doc_pairs in enumerate(pairs):
        for start, end in doc_pairs:
            start, end = min(start, max_length), min(end, max_length)  # spans beyond the kept tokens are dropped
            spans[i, offsets[i] + start:offsets[i] + end] = True
    annotated = TextSplit(tokens, np.asarray(values, dtype=np.float32), spans)
    words_in_text = sum(int((s.tokens > 0).sum()) for s in (train, heldout, annotated))
    unknown = int((heldout.tokens == 2).sum()) + sum(
        int(sum(t not in index for t in doc[:max_length])) for doc in docs)
    return L2XData("beer", train, None, None, embedding=embedding, vocabulary=vocabulary,
                   source=f"BeerAdvocate {folder}", heldout=heldout, annotated=annotated,
                   info={"aspect": aspect, "vocabulary_size": len(vocabulary),
                         "words_with_embedding": found,
                         "unknown_token_fraction": unknown / max(1, words_in_text + unknown),
                         "span_fraction": float(spans.sum() / max(1, (tokens > 0).sum()))})
