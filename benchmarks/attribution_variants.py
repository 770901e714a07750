"""The conversion model and its counterfactual credit outside the pipeline, to measure seed noise and variants fast.

Same journeys (modules.attribution.journeys), same split (assign_split), same model and training
(fit_conversion_model, default settings, no Tuner), same impression process (triggering.fit over every user's
touches) and counterfactual arithmetic (counterfactual.credit_batch) as the pipeline, but in memory: one run is a
few minutes on 2 cores instead of ~20. The figures in docs/attribution.md's tables come from the pipeline where
they say so; this script measures how much they move with the seeds and the variants.

Run: python benchmarks/attribution_variants.py --data IMPRESSIONS.csv --truth GROUND_TRUTH.csv
     [--seeds 42 43] [--set ensemble=1 --set journey_max_length=20 ...] [--shapley]
(each seed trains the pipeline's default ensemble of `ensemble` members unless --set ensemble=1;
`--set history=off` feeds zeros as the user's history: close to the model before it had one;
`--set kernel_hours=24,240` the impression process's kernels)
Prints the impression process's seconds and triggered shares, then one JSON line per model seed (Spearman, abs.
error of removal / shapley / total_effect, and total_effect with the background on every day: the alternative to
the flights rule) and one for their average credit.
"""
import argparse
import collections
import csv
import json
import math
import time
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from modules import attribution as module
from pipelines.attribution import baselines, counterfactual, triggering
from pipelines.attribution.campaign_report import read_truth
from pipelines.attribution.pipeline import SETTINGS


def read_examples(path: str, length: int) -> List[Dict[str, Any]]:
  """Every journey of the impressions CSV, as build_examples lays it out."""
  touches = collections.defaultdict(list)
  with open(path) as f:
    for row in csv.DictReader(f):
      parsed, reason = module.parse_impression(row)
      if not reason:
        touches[parsed[0]].append(parsed[1])
  examples = []
  for uid in sorted(touches):
    earlier: collections.Counter = collections.Counter()
    for example, dropped in module.journeys(uid, touches[uid], length):
      example['earlier_touches'] = dict(earlier)  # the user's touches per campaign in earlier journeys
      n = example['journey_length']
      example['all_campaigns'] = [t[1] for t in dropped] + example[module.CAMPAIGNS][:n]
      example['all_hours'] = [(example['end_timestamp'] - t[0]) / 3600.0 for t in dropped] + example[module.HOURS][:n]
      earlier.update(t[1] for t in dropped)
      earlier.update(example[module.CAMPAIGNS][:example['journey_length']])
      examples.append(example)
  return examples


def history(examples: List[Dict[str, Any]], vocabulary: Dict[str, int], kind: str) -> np.ndarray:
  """The user_history input: 'on' as preprocessing_fn makes it, 'off' zeros (the model without it), 'campaigns'
  adds log1p of the user's earlier touches per campaign (a variant tried and not kept)."""
  rows = []
  for e in examples:
    row = [math.log1p(e[module.EARLIER_JOURNEYS]), math.log1p(max(e[module.EARLIER_HOURS], 0.0))]
    if kind == 'campaigns':
      row += [math.log1p(e['earlier_touches'].get(c, 0)) for c in sorted(vocabulary, key=vocabulary.get)]
    rows.append(row)
  return np.array(rows, np.float32) * (kind != 'off')


def featurize(examples: List[Dict[str, Any]], vocabulary: Dict[str, int]) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """The Transform outputs of preprocessing_fn, in numpy."""
  mask = np.array([e[module.MASK] for e in examples], np.int64)
  index = np.array([[vocabulary.get(c, len(vocabulary) + 1) for c in e[module.CAMPAIGNS]] for e in examples]) * mask
  hours = np.array([e[module.HOURS] for e in examples], np.float32)
  return ({module.CAMPAIGN_INDEX: index.astype(np.int64),
           module.LOG_HOURS: (np.log1p(np.maximum(hours, 0.0)) * mask).astype(np.float32),
           module.LOG_SPAN: np.log1p(np.array([[max(e[module.SPAN], 0.0)] for e in examples], np.float32))},
          np.array([e[module.LABEL] for e in examples], np.float32))


def credit(model, correction: float, features: Dict[str, np.ndarray], examples: List[Dict[str, Any]], length: int,
           shapley: bool, flights: bool = True, kernel_hours: Sequence[float] = triggering.KERNEL_HOURS
           ) -> Dict[str, Dict[str, float]]:
  """counterfactual.credit_batch over every journey with the in-memory model; scaled like the pipeline."""

  def predict(payloads: np.ndarray, rows: np.ndarray, keep: np.ndarray) -> np.ndarray:
    journeys = np.asarray(payloads, np.int64)[rows]
    index, log_hours = module.keep_only(tf.constant(features[module.CAMPAIGN_INDEX][journeys]),
                                        tf.constant(features[module.LOG_HOURS][journeys]), tf.constant(keep))
    logit = model({module.CAMPAIGN_INDEX: index, module.LOG_HOURS: log_hours,
                   module.LOG_SPAN: tf.constant(features[module.LOG_SPAN][journeys]),
                   module.HISTORY: tf.constant(features[module.HISTORY][journeys])}, training=False)['logit']
    return tf.sigmoid(tf.reshape(logit, [-1]) + correction).numpy()

  items = []
  for j, e in enumerate(examples):
    n = e['journey_length']
    journey = baselines.Journey(e[module.CAMPAIGNS][:n], e[module.HOURS][:n], bool(e[module.LABEL]))
    items.append([e[module.KEY], journey, j, None])
  started = time.time()
  users = collections.defaultdict(list)
  for item, e in zip(items, examples):
    users[e['uid']].append((item, (e['end_timestamp'] / 3600.0, e['all_campaigns'], e['all_hours'])))
  process = triggering.fit([triggering.user_stream([j for _, j in user]) for user in users.values()],
                           kernel_hours=kernel_hours, flights=flights)
  for user in users.values():
    for (item, _), triggered in zip(user, triggering.triggered_journeys(process, [j for _, j in user])):
      item[3] = triggered
  print(json.dumps({'triggering_s': round(time.time() - started, 1), 'triggered': {
      c: round(v, 2) for c, v in triggering.triggered_shares(process, [
          triggering.user_stream([j for _, j in user]) for user in list(users.values())[:3000]]).items()}}),
        flush=True)
  sums: Dict[str, np.ndarray] = {}
  for start in range(0, len(items), 2048):
    batch = counterfactual.credit_batch([tuple(i) for i in items[start:start + 2048]], predict, length,
                                        6 if shapley else 0, 16 if shapley else 1)
    for key, value in batch.items():
      sums[key] = sums.get(key, 0.0) + value
  credits, totals = counterfactual.scaled(sums)
  if not shapley:
    credits.pop('shapley')
  return {**credits, 'totals': totals}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data', required=True)
  parser.add_argument('--truth', required=True)
  parser.add_argument('--seeds', type=int, nargs='+', default=[42])
  parser.add_argument('--set', action='append', default=[])
  parser.add_argument('--shapley', action='store_true')
  parser.add_argument('--tag', default='')
  args = parser.parse_args()
  config = dict(SETTINGS)
  for setting in args.set:
    key, value = setting.split('=', 1)
    config[key] = type(SETTINGS[key])(value) if key in SETTINGS else value
  length = int(config['journey_max_length'])
  examples = read_examples(args.data, length)
  truth = read_truth(args.truth)
  counts = collections.Counter(c for e in examples for c in e[module.CAMPAIGNS][:e['journey_length']])
  vocabulary = {c: i + 1 for i, (c, _) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))}
  features, labels = featurize(examples, vocabulary)
  features[module.HISTORY] = history(examples, vocabulary, config.get('history', 'on'))
  split = np.array([module.assign_split(e[module.KEY]) for e in examples])
  train, evaluation = split == 'train', split == 'eval'
  runs = []
  for seed in args.seeds:
    started = time.time()
    model, factor = module.fit_conversion_model(
        {k: v[train] for k, v in features.items()}, labels[train], {k: v[evaluation] for k, v in features.items()},
        labels[evaluation], len(vocabulary), {**config, 'seed': seed}, int(config['epochs']))
    test = split == 'test'
    logits = model.predict({k: v[test] for k, v in features.items()}, batch_size=4096, verbose=0)['logit']
    auc = tf.keras.metrics.AUC(num_thresholds=1000)
    auc.update_state(labels[test], tf.sigmoid(logits.reshape(-1)))
    trained = time.time()
    kernels = [float(h) for h in str(config.get('kernel_hours', '')).split(',') if h] or triggering.KERNEL_HOURS
    result = credit(model, -math.log(factor), features, examples, length, args.shapley, kernel_hours=kernels)
    result['total_effect_no_flights'] = credit(model, -math.log(factor), features, examples, length, False,
                                               flights=False, kernel_hours=kernels)['total_effect']
    runs.append(result)
    line = {'tag': args.tag, 'data': args.data, 'seed': seed, 'auc': round(float(auc.result()), 4),
            'train_s': round(trained - started), 'credit_s': round(time.time() - trained),
            'incremental': round(result['totals']['model_incremental_conversions']),
            'touch_log_odds': round(module.touch_log_odds(model, {k: v[test] for k, v in features.items()}), 4)}
    for method in ('removal', 'shapley', 'total_effect', 'total_effect_no_flights'):
      if method in result:
        line[method] = {k: round(v, 3) for k, v in baselines.compare(result[method], truth).items()}
    line['removal_credit'] = {c: round(v) for c, v in result['removal'].items()}
    line['total_effect_credit'] = {c: round(v) for c, v in result['total_effect'].items()}
    print(json.dumps(line), flush=True)
  if len(runs) > 1:
    line = {'tag': args.tag, 'data': args.data, 'seed': 'mean'}
    for method in ('removal', 'shapley', 'total_effect', 'total_effect_no_flights'):
      if method in runs[0]:
        mean = {c: float(np.mean([r[method].get(c, 0.0) for r in runs])) for c in runs[0][method]}
        line[method] = {k: round(v, 3) for k, v in baselines.compare(mean, truth).items()}
    print(json.dumps(line), flush=True)


if __name__ == '__main__':
  main()
