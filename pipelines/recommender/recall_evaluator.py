"""RecallEvaluator: recall@k of the two-tower model, the popularity baseline and random ranking on the same
sampled tracks, and the embedding-based nearest tracks of the most popular tracks.

recall@k by the reference's definition: each positive test pair (label 1, user and track in the vocabularies) is
ranked against `num_samples` tracks drawn without replacement from the track vocabulary (never the positive itself;
fewer when the vocabulary is smaller), seeded, the same draws for every model; a hit at k when fewer than k sampled
tracks score above it (ties count half). Scores: two_tower = cosine of the user and track vectors (|cosine| for
objective `cosine`; the model's embed_users / embed_tracks signatures), popularity = the track's training listens,
random = seeded uniform. Full catalog (catalog_evaluation): every vocabulary track ranked per user, the user's
training tracks left out: catalog_recall_at_<k>, catalog_ndcg_at_<k>.
Writes into its `report` artifact recall.json ({'models': {name: {'recall_at_<k>': ..., 'catalog_...': ...}}, 'curve': {name: [recall@1
.. @max_k]}, 'positives', 'samples_per_positive', 'vocabulary_tracks', 'nearest_tracks'}), recall_curve.png and
nearest_tracks.csv (query track, rank, neighbour, similarity, their artists and tags).
"""
import csv
import json
import os
from typing import Any, Dict, List, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import types
from tfx import v1 as tfx
from tfx.utils import path_utils

from modules import recommender as module
from pipelines import artifacts, beam_io

RECALL_JSON = 'recall.json'
CURVE_PLOT = 'recall_curve.png'
NEAREST_CSV = 'nearest_tracks.csv'
MODELS = ('two_tower', 'popularity', 'random')


class RecallReport(types.Artifact):
  """recall@k of the model and the baselines, and nearest tracks (files listed in the module docstring)."""
  TYPE_NAME = 'marketing_ml.RecallReport'  # namespace.Name: KFP v2 requires it


def _rows(examples: types.Artifact, split: str) -> List[Dict[str, Any]]:
  return [beam_io.serialized_example_to_row(s) for s in artifacts.read_split(examples.uri, split)]


def _unit_vectors(signature, names: List[str]) -> np.ndarray:
  return signature(names=tf.constant(names, tf.string))['vectors'].numpy() if names else np.zeros((0, 1))


def evaluate(user_vectors: np.ndarray, track_vectors: np.ndarray, popularity: np.ndarray,
             positive_tracks: np.ndarray, num_samples: int, seed: int, objective: str = 'cosine'
             ) -> Tuple[Dict[str, np.ndarray], int]:
  """Ranks of each positive (row i: user_vectors[i], track positive_tracks[i]) per model on shared samples,
  and the samples per positive. The model's score: module.rank_scores for its objective."""
  samples = module.sample_negatives(positive_tracks, len(track_vectors), num_samples, seed)
  rng = np.random.default_rng(seed + 1)
  candidates = np.concatenate([positive_tracks[:, None], samples], axis=1)  # column 0: the positive
  products = np.einsum('pd,pnd->pn', user_vectors, track_vectors[candidates])
  scores = {
      'two_tower': np.abs(products) if objective == 'cosine' else products,
      'popularity': popularity[candidates],
      'random': rng.random(candidates.shape),
  }
  return {name: module.ranks(s[:, 0], s[:, 1:]) for name, s in scores.items()}, samples.shape[1]


def catalog_evaluation(user_vectors: np.ndarray, track_vectors: np.ndarray, popularity: np.ndarray,
                       train_pairs: np.ndarray, test_pairs: np.ndarray, ks: List[int], seed: int,
                       objective: str = 'cosine') -> Dict[str, Dict[str, float]]:
  """Full-catalog recall@k and NDCG@k (module.catalog_metrics) per model over the users with a positive test
  pair: user_vectors [users, d] indexed like the pairs' first column; train_pairs / test_pairs [n, 2] of (user
  index, track index): training tracks excluded, positive test tracks relevant."""
  users = np.unique(test_pairs[:, 0])
  row = {u: i for i, u in enumerate(users)}
  shape = (len(users), len(track_vectors))
  relevant = np.zeros(shape, bool)
  relevant[[row[u] for u in test_pairs[:, 0]], test_pairs[:, 1]] = True
  excluded = np.zeros(shape, bool)
  known = np.isin(train_pairs[:, 0], users)
  excluded[[row[u] for u in train_pairs[known, 0]], train_pairs[known, 1]] = True
  rng = np.random.default_rng(seed + 2)
  matrices = {'two_tower': module.rank_scores(user_vectors[users], track_vectors, objective),
              'popularity': np.broadcast_to(popularity, shape), 'random': rng.random(shape)}
  return {name: module.catalog_metrics(m, excluded, relevant, ks) for name, m in matrices.items()}


def nearest_tracks(track_vectors: np.ndarray, names: List[str], popularity: np.ndarray, describe: Dict[str, str],
                   queries: int = 5, neighbours: int = 5, objective: str = 'cosine') -> List[Dict[str, Any]]:
  """The `neighbours` tracks most similar (module.rank_scores: cosine, |cosine| for objective `cosine`) to each of
  the `queries` most listened training tracks."""
  rows = []
  for query in np.argsort(-popularity, kind='stable')[:queries]:
    similarity = module.rank_scores(track_vectors[query][None], track_vectors, objective)[0]
    similarity[query] = -np.inf
    for rank, other in enumerate(np.argsort(-similarity, kind='stable')[:neighbours], start=1):
      rows.append({'track': names[query], 'track_info': describe.get(names[query], ''), 'rank': rank,
                   'neighbour': names[other], 'neighbour_info': describe.get(names[other], ''),
                   'similarity': round(float(similarity[other]), 4)})
  return rows


def _plot(curve: Dict[str, List[float]], path: str, samples: int) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  figure, axis = plt.subplots(figsize=(7, 4))
  for name, values in curve.items():
    axis.plot(range(1, len(values) + 1), values, label=name)
  axis.set_xscale('log')
  axis.set_xlabel('k')
  axis.set_ylabel('recall@k')
  axis.set_title(f'recall@k of positive test pairs against {samples} sampled tracks')
  axis.legend()
  axis.grid(True, alpha=0.3)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


@tfx.dsl.components.component
def RecallEvaluator(  # pylint: disable=invalid-name
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    report: tfx.dsl.components.OutputArtifact[RecallReport],
    num_samples: tfx.dsl.components.Parameter[int] = 1000,
    seed: tfx.dsl.components.Parameter[int] = 42,
    ks: tfx.dsl.components.Parameter[str] = '10,100',
    objective: tfx.dsl.components.Parameter[str] = 'softmax',
    code_version: tfx.dsl.components.Parameter[str] = '') -> None:
  """recall@k of the model and the baselines on the in-vocabulary test pairs (see the module docstring);
  examples: the VocabularyFilter's output; objective: the model's (its ranking score);
  code_version: a hash of this code, so a change invalidates the cache."""
  del code_version
  ks_list = sorted({int(k) for k in ks.split(',') if k.strip()})
  names = [v.decode() if isinstance(v, bytes) else v
           for v in tft.TFTransformOutput(transform_graph.uri).vocabulary_by_name(module.TRACK_VOCAB)]
  index = {name: i for i, name in enumerate(names)}
  train = _rows(examples, 'train')
  popularity = np.zeros(len(names))
  describe: Dict[str, str] = {}
  for row in train:
    popularity[index[str(row[module.TRACK])]] += row[module.COUNT]
    describe.setdefault(str(row[module.TRACK]), f'{row[module.ARTIST]}; {row[module.TAGS]}')
  positives = sorted((str(r[module.USER]), str(r[module.TRACK])) for r in _rows(examples, 'test') if r[module.LABEL])
  loaded = tf.saved_model.load(path_utils.serving_model_path(model.uri))
  track_vectors = _unit_vectors(loaded.signatures[module.EMBED_TRACKS], names)
  users = sorted({u for u, _ in positives})
  user_row = {u: i for i, u in enumerate(users)}
  user_vectors = _unit_vectors(loaded.signatures[module.EMBED_USERS], users)
  positive_pairs = np.array([(user_row[u], index[t]) for u, t in positives], np.int64).reshape(-1, 2)
  train_pairs = np.array([(user_row[str(r[module.USER])], index[str(r[module.TRACK])]) for r in train
                          if str(r[module.USER]) in user_row], np.int64).reshape(-1, 2)
  max_k = max(ks_list)
  ranks, samples = evaluate(user_vectors[positive_pairs[:, 0]], track_vectors, popularity, positive_pairs[:, 1],
                            num_samples, seed, objective)
  curve = {name: [module.recall_at_k(r, [k])[k] for k in range(1, min(max_k, samples + 1) + 1)]
           for name, r in ranks.items()}
  models = {name: {f'recall_at_{k}': v for k, v in module.recall_at_k(r, ks_list).items()}
            for name, r in ranks.items()}
  catalog = catalog_evaluation(user_vectors, track_vectors, popularity, train_pairs, positive_pairs, ks_list, seed,
                               objective)
  for name in models:
    models[name].update(catalog[name])
  nearest = nearest_tracks(track_vectors, names, popularity, describe, objective=objective)
  content = {'models': models, 'curve': curve, 'positives': len(positives), 'samples_per_positive': samples,
             'vocabulary_tracks': len(names), 'seed': seed, 'objective': objective, 'nearest_tracks': nearest}
  with tf.io.gfile.GFile(os.path.join(report.uri, RECALL_JSON), 'w') as f:
    json.dump(content, f, indent=2)
  with tf.io.gfile.GFile(os.path.join(report.uri, NEAREST_CSV), 'w') as f:
    writer = csv.DictWriter(f, list(nearest[0]) if nearest else ['track'], lineterminator='\n')
    writer.writeheader()
    writer.writerows(nearest)
  _plot(curve, os.path.join(report.uri, CURVE_PLOT), samples)
  report.set_int_custom_property('positives', len(positives))
  report.set_int_custom_property('samples_per_positive', samples)
