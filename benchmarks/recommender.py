"""Recommender quality and speed.

Quality (--quality DATA.csv): the model against popularity and random on a listens file, without TFX: pairs,
splits and user features by the module's own functions (build_examples' steps), vocabularies with the settings'
thresholds (as Transform's), fit_towers, then the RecallEvaluator's sampled and full-catalog metrics on the
in-vocabulary test pairs. --set key=value overrides settings (several: --set a=1 --set b=2); --compare
objective=softmax,cosine runs one fit per value. Prints JSON: settings, training seconds, metrics per model.
Real data: MovieLens-100K ships inside the recbole wheel (MIT code; the data's own licence forbids redistribution,
so it is not bundled):
  pip download recbole==1.2.1 --no-deps -d /tmp/rec-pkgs && unzip -o /tmp/rec-pkgs/recbole-1.2.1-py3-none-any.whl \
    'recbole/dataset_example/ml-100k/*' -d /tmp/rec-pkgs/recbole-whl
  python -m pipelines.recommender.convert_ratings \
    /tmp/rec-pkgs/recbole-whl/recbole/dataset_example/ml-100k/ml-100k.inter /tmp/rec-ml100k.csv
  python benchmarks/recommender.py --quality /tmp/rec-ml100k.csv

Speed (default): training pairs per second, top-k latency for one user, batch recommendation rows per second.

Reads the latest recommender run (ML Metadata in <run dir>/metadata.sqlite): its Transform output (the transformed
training pairs), settings and pushed model. Training: one epoch of the two towers on the in-vocabulary training pairs
plus the sampled negatives, with the run's settings. Top-k: the pushed model's `top_k` signature called for one known
user (median of repeated calls after a warm-up). Batch: `top_k` over every vocabulary user in batches, rows = users x k.

Run: TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/recommender.py [--run-dir runs/recommender] [--calls 200]
     [--batch-size 256]
"""
import argparse
import collections
import csv
import glob
import json
import os
import time

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from modules import recommender as module  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipelines.recommender import pipeline as recommender_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipelines.recommender.recall_evaluator import catalog_evaluation, evaluate  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipelines.report import latest_run  # pylint: disable=g-import-not-at-top,wrong-import-position


def read_examples(path: str, settings: dict) -> dict:
  """split -> examples, as build_examples makes them (same functions, without Beam)."""
  listens = collections.defaultdict(list)
  with open(path, newline='') as f:
    for row in csv.DictReader(f):
      listen, reason = module.parse_listen(row)
      if not reason:
        listens[(listen[0], listen[1])].append((listen[2], listen[3]))
  by_user = collections.defaultdict(list)
  for (user, track), pair_listens in listens.items():
    pair = module.aggregate_pair(user, track, pair_listens, int(settings['max_tags']))
    pair['split'] = module.assign_split(user, track, int(settings['eval_percent']), int(settings['test_percent']))
    by_user[user].append(pair)
  tags = module.top_tags([p for pairs in by_user.values() for p in pairs if p['split'] == 'train'],
                         int(settings['user_tag_features']))
  splits = collections.defaultdict(list)
  for user, pairs in by_user.items():
    for split, example in module.user_examples(user, pairs, tags, int(settings['user_tag_features'])):
      splits[split].append(example)
  return splits


class _Sizes:  # module.Sizes without a transform graph
  def __init__(self, users, tracks, artists, tags):
    self.users, self.tracks, self.artists, self.tags = users, tracks, artists, tags


def _vocabulary(tokens, threshold: int) -> dict:
  """token -> index, most frequent first (ties: token), kept when in at least `threshold` training pairs."""
  counts = collections.Counter(tokens)
  kept = sorted((t for t, c in counts.items() if c >= threshold), key=lambda t: (-counts[t], t))
  return {t: i for i, t in enumerate(kept)}


def transform(splits: dict, settings: dict):
  """(columns per split, in vocabulary; sizes): preprocessing_fn's outputs computed in NumPy."""
  train = splits['train']
  vocab = {name: _vocabulary([e[column] for e in train], int(settings[f'min_{name}_pairs']))
           for name, column in (('user', module.USER), ('track', module.TRACK), ('artist', module.ARTIST))}
  vocab['tag'] = _vocabulary([t for e in train for t in e[module.TAGS].split('|') if t],
                             int(settings['min_tag_pairs']))
  sizes = _Sizes(len(vocab['user']), len(vocab['track']), len(vocab['artist']), len(vocab['tag']))
  max_tags = int(settings['max_tags'])
  out = {}
  for split in ('train', 'eval', 'test'):
    rows = [e for e in splits[split] if e[module.USER] in vocab['user'] and e[module.TRACK] in vocab['track']]
    tag_index = np.zeros((len(rows), max_tags), np.int64)
    for i, e in enumerate(rows):
      for j, t in enumerate([t for t in e[module.TAGS].split('|') if t][:max_tags]):
        tag_index[i, j] = vocab['tag'].get(t, sizes.tags) + 1
    out[split] = {
        module.USER_INDEX: np.array([vocab['user'][e[module.USER]] for e in rows], np.int64),
        module.TRACK_INDEX: np.array([vocab['track'][e[module.TRACK]] for e in rows], np.int64),
        module.ARTIST_INDEX: np.array([vocab['artist'].get(e[module.ARTIST], sizes.artists) for e in rows], np.int64),
        module.TAG_INDEX: tag_index,
        module.USER_TAG_SHARES: np.array([e[module.USER_TAG_SHARES] for e in rows], np.float32),
        module.LABEL: np.array([e[module.LABEL] for e in rows], np.float32),
        module.WEIGHT: np.array([e[module.WEIGHT] for e in rows], np.float32),
        module.COUNT: np.array([e[module.COUNT] for e in rows], np.float32),
    }
  return out, sizes


def quality(columns: dict, sizes, settings: dict, num_samples: int) -> dict:
  """Fits the model with `settings` and returns training seconds and the metrics of model, popularity, random."""
  start = time.perf_counter()
  user_tower, item_tower, _ = module.fit_towers(columns['train'], columns['eval'], sizes, settings, verbose=0)
  seconds = time.perf_counter() - start
  users, tracks = module.tower_vectors(user_tower, item_tower, columns['train'], sizes)
  train, test = columns['train'], columns['test']
  popularity = np.bincount(train[module.TRACK_INDEX], weights=train[module.COUNT], minlength=sizes.tracks)
  positive = test[module.LABEL] > 0
  positive_pairs = np.stack([test[module.USER_INDEX][positive], test[module.TRACK_INDEX][positive]], 1)
  seed, objective = int(settings['seed']), str(settings['objective'])
  ranks, _ = evaluate(users[positive_pairs[:, 0]], tracks, popularity, positive_pairs[:, 1], num_samples, seed,
                      objective)
  metrics = {name: {f'recall_at_{k}': v for k, v in module.recall_at_k(r, [10, 100]).items()}
             for name, r in ranks.items()}
  train_pairs = np.stack([train[module.USER_INDEX], train[module.TRACK_INDEX]], 1)
  for name, values in catalog_evaluation(users, tracks, popularity, train_pairs, positive_pairs, [10, 100], seed,
                                         objective).items():
    metrics[name].update(values)
  return {'train_seconds': round(seconds, 1), 'positives': int(positive.sum()),
          'metrics': {name: {k: round(v, 4) for k, v in m.items()} for name, m in metrics.items()}}


def _value(text: str):
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text


def quality_main(args) -> None:
  """--quality: prints one JSON line per compared setting."""
  settings = dict(recommender_pipeline.SETTINGS)
  settings.update({k: _value(v) for k, v in (s.split('=', 1) for s in args.set)})
  start = time.perf_counter()
  columns, sizes = transform(read_examples(args.quality, settings), settings)
  print(json.dumps({'data': args.quality, 'prepare_seconds': round(time.perf_counter() - start, 1),
                    'users': sizes.users, 'tracks': sizes.tracks,
                    'pairs': {s: len(c[module.LABEL]) for s, c in columns.items()}}), flush=True)
  key, values = (args.compare.split('=', 1) if args.compare else ('objective', str(settings['objective'])))
  for value in values.split(','):
    run = {**settings, key: _value(value)}
    print(json.dumps({key: value, **quality(columns, sizes, run, int(settings['recall_samples']))}), flush=True)


def training_pairs_per_second(transform_graph: str, transformed: str, settings: dict) -> float:
  """In-vocabulary training pairs per second over one epoch of fit_towers with the run's settings (tracing
  included: one epoch is what a user waits for)."""
  output = tft.TFTransformOutput(transform_graph)
  sizes = module.Sizes(output)
  spec = output.transformed_feature_spec()
  files = glob.glob(os.path.join(transformed, 'Split-train', '*'))
  batches = list(tf.data.TFRecordDataset(files, compression_type='GZIP').batch(4096)
                 .map(lambda s: tf.io.parse_example(s, spec)).as_numpy_iterator())
  columns = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
  keep = (columns[module.USER_INDEX] < sizes.users) & (columns[module.TRACK_INDEX] < sizes.tracks)
  train = {k: v[keep] for k, v in columns.items()}
  start = time.perf_counter()
  module.fit_towers(train, {k: v[:0] for k, v in train.items()}, sizes, {**settings, 'epochs': 1}, verbose=0)
  return len(train[module.LABEL]) / (time.perf_counter() - start)



def main() -> None:
  """Prints the three figures as JSON."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--run-dir', default=os.path.join(REPO, 'runs', 'recommender'))
  parser.add_argument('--calls', type=int, default=200)
  parser.add_argument('--batch-size', type=int, default=256)
  parser.add_argument('--quality', metavar='DATA_CSV', help='quality on this listens file instead of speed')
  parser.add_argument('--set', action='append', default=[], help='key=value over the pipeline settings')
  parser.add_argument('--compare', help='key=v1,v2: one fit per value')
  args = parser.parse_args()
  if args.quality:
    quality_main(args)
    return
  nodes = latest_run(os.path.join(args.run_dir, 'metadata.sqlite'), 'recommender')
  with open(os.path.join(args.run_dir, 'summary.json')) as f:
    settings = json.load(f)['settings']
  pairs_per_second = training_pairs_per_second(nodes['Transform'].outputs['transform_graph'][-1].uri,
                                               nodes['Transform'].outputs['transformed_examples'][-1].uri, settings)
  pushed = nodes['Pusher'].outputs['pushed_model'][-1].custom_properties['pushed_destination'].string_value
  top_k = tf.saved_model.load(pushed).signatures[module.TOP_K_SIGNATURE]
  users = [u.decode() for u in tft.TFTransformOutput(nodes['Transform'].outputs['transform_graph'][-1].uri)
           .vocabulary_by_name(module.USER_VOCAB)]
  one = tf.constant([users[0]])
  top_k(user_names=one)
  latencies = []
  for _ in range(args.calls):
    start = time.perf_counter()
    top_k(user_names=one)[module.TOP_TRACKS].numpy()
    latencies.append(time.perf_counter() - start)
  start = time.perf_counter()
  rows = 0
  for i in range(0, len(users), args.batch_size):
    rows += top_k(user_names=tf.constant(users[i:i + args.batch_size]))[module.TOP_TRACKS].numpy().size
  batch_rows_per_second = rows / (time.perf_counter() - start)
  print(json.dumps({'training_pairs_per_second': round(pairs_per_second),
                    'top_k_latency_ms_median': round(1000 * float(np.median(latencies)), 3),
                    'top_k_latency_ms_p95': round(1000 * float(np.percentile(latencies, 95)), 3),
                    'batch_recommendation_rows_per_second': round(batch_rows_per_second),
                    'vocabulary_users': len(users), 'k': int(settings['top_k'])}, indent=2))


if __name__ == '__main__':
  main()
