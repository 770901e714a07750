"""Recommender speed: training pairs per second, top-k latency for one user, batch recommendation rows per second.

Reads the latest recommender run (ML Metadata in <run dir>/metadata.sqlite): its Transform output (the transformed
training pairs), settings and pushed model. Training: one epoch of the two towers on the in-vocabulary training pairs
plus the sampled negatives, with the run's settings. Top-k: the pushed model's `top_k` signature called for one known
user (median of repeated calls after a warm-up). Batch: `top_k` over every vocabulary user in batches, rows = users x k.

Run: TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/recommender.py [--run-dir runs/recommender] [--calls 200]
     [--batch-size 256]
"""
import argparse
import glob
import json
import os
import sys
import time

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top,wrong-import-position
import tf_keras as keras  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from modules import recommender as module  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipelines.report import latest_run  # pylint: disable=g-import-not-at-top,wrong-import-position


def training_pairs_per_second(transform_graph: str, transformed: str, settings: dict) -> float:
  """Fitted pairs (listened, reweighted, + sampled negatives) per second over one training epoch, the first batch's tracing excluded."""
  output = tft.TFTransformOutput(transform_graph)
  sizes = module.Sizes(output)
  spec = output.transformed_feature_spec()
  files = glob.glob(os.path.join(transformed, 'Split-train', '*'))
  batches = list(tf.data.TFRecordDataset(files, compression_type='GZIP').batch(4096)
                 .map(lambda s: tf.io.parse_example(s, spec)).as_numpy_iterator())
  columns = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
  keep = (columns[module.USER_INDEX] < sizes.users) & (columns[module.TRACK_INDEX] < sizes.tracks)
  train = {k: v[keep] for k, v in columns.items()}
  data = module.fitted_pairs(train, sizes, settings)
  user_tower, item_tower = module.build_towers(
      sizes, train[module.USER_TAG_SHARES].shape[1], int(settings['max_tags']), int(settings['embedding_dim']),
      [int(u) for u in str(settings['tower_units']).split(',') if u.strip()], int(settings['output_dim']))
  model = module.build_model(user_tower, item_tower)
  model.compile(optimizer=keras.optimizers.Adam(float(settings['learning_rate'])),
                loss=keras.losses.BinaryCrossentropy())
  dataset = tf.data.Dataset.from_tensor_slices(({n: data[n] for n in model.input_names},
                                                data[module.LABEL][:, None], data[module.WEIGHT])).batch(
                                                    int(settings['batch_size']))
  model.fit(dataset.take(1), verbose=0)  # tracing
  start = time.perf_counter()
  model.fit(dataset, verbose=0)
  return len(data[module.LABEL]) / (time.perf_counter() - start)


def main() -> None:
  """Prints the three figures as JSON."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--run-dir', default=os.path.join(REPO, 'runs', 'recommender'))
  parser.add_argument('--calls', type=int, default=200)
  parser.add_argument('--batch-size', type=int, default=256)
  args = parser.parse_args()
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
