"""CLV feature variants compared in an out-of-time backtest, without TFX (minutes instead of a pipeline run each).

For each cut: features as of cut - horizon (labels: spend up to the cut) for training, as of the cut for
scoring; each scored customer's actual spend in (cut, cut + horizon] is the truth. Uses the module's own
customer_features, build_model, losses and the pipeline's BTYD fit; preprocessing mirrors preprocessing_fn
(log1p + z-score for counts and money, z-score for durations). The champion is the lowest eval-split MAE of
DNN, BTYD and the training mean, as the pipeline's champion gate decides.

Usage: python benchmarks/clv_backtest_variants.py [--cuts 1998-02-28,1997-12-31] [--horizon 120]
    [--variants a,b] [--epochs 30]
"""
import argparse
import datetime
import os
import sys
from typing import Any, Dict, List

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras as keras

from modules import clv
from pipelines import metrics
from pipelines.clv import btyd

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'clv', 'transactions.csv')
BTYD_INPUTS = ['btyd_expected_purchases', 'btyd_p_alive', 'btyd_expected_spend', 'btyd_clv']
OLD_LOG = ['frequency', 'total_spend', 'mean_spend', 'mean_quantity', 'monetary_value', 'purchases_last_30',
           'purchases_last_90']
WINDOW_LOG = ['mean_spend', 'mean_quantity', 'monetary_value', 'purchases_last_30', 'purchases_last_90',
              'purchases_last_180', 'purchases_last_365', 'spend_last_30', 'spend_last_90', 'spend_last_180',
              'spend_last_365', 'purchase_rate', 'spend_rate', 'days_since_last']
SHORT_LOG = ['mean_spend', 'mean_quantity', 'monetary_value', 'purchases_last_30', 'purchases_last_90',
             'purchases_last_180', 'spend_last_30', 'spend_last_90', 'spend_last_180', 'days_since_last']
# name -> (log1p + z-score features, z-score features, loss, clip inputs to the training range)
VARIANTS = {
    'old': (OLD_LOG, ['recency', 'T', 'mean_days_between_purchases'], 'mse', False),
    'windows': (WINDOW_LOG, [], 'mse', False),
    'windows_ziln': (WINDOW_LOG, [], 'ziln', False),
    'windows_btyd': (WINDOW_LOG + BTYD_INPUTS, [], 'mse', False),
    'btyd_only': (BTYD_INPUTS + ['days_since_last'], [], 'mse', False),
    'windows_clip': (WINDOW_LOG, [], 'mse', True),
    'short_clip': (SHORT_LOG, [], 'mse', True),
}


def _purchases(path: str) -> Dict[str, List[clv.Purchase]]:
  frame = pd.read_csv(path, dtype={'customer_id': str})
  by_customer: Dict[str, List[clv.Purchase]] = {}
  for customer, day, quantity, amount in frame[['customer_id', 'date', 'quantity', 'amount']].itertuples(index=False):
    by_customer.setdefault(customer, []).append((clv.parse_date(day), float(quantity), float(amount)))
  return by_customer


def _frame(purchases, as_of: datetime.date, label_end: datetime.date) -> pd.DataFrame:
  rows = []
  for customer, items in purchases.items():
    features = clv.customer_features(items, as_of)
    if features is not None:
      rows.append({'customer_id': customer, **features, 'label': clv.spend_between(items, as_of, label_end)})
  return pd.DataFrame(rows).set_index('customer_id')


def _with_btyd(frames: Dict[str, pd.DataFrame], horizon: int) -> None:
  fitted = btyd.fit_btyd(btyd.to_time_unit(frames['train'][btyd.SUMMARY_COLUMNS], 'weeks'), 'bgnbd', 0.0, 'weeks')
  for frame in frames.values():
    predicted = fitted.predict(btyd.to_time_unit(frame[btyd.SUMMARY_COLUMNS], 'weeks'), horizon / 7.0)
    for column in predicted.columns:
      frame['btyd_' + column] = predicted[column]


def _transform(frames: Dict[str, pd.DataFrame], log_features, linear_features, clip: bool
               ) -> Dict[str, Dict[str, np.ndarray]]:
  train = frames['train']
  stats = {}
  for name in log_features:
    values = np.log1p(train[name].to_numpy(float))
    stats[name] = (True, values.mean(), values.std() or 1.0, values.min(), values.max())
  for name in linear_features:
    values = train[name].to_numpy(float)
    stats[name] = (False, values.mean(), values.std() or 1.0, values.min(), values.max())
  out = {}
  for split, frame in frames.items():
    out[split] = {}
    for name, (log, mean, std, low, high) in stats.items():
      values = np.log1p(frame[name].to_numpy(float)) if log else frame[name].to_numpy(float)
      values = np.clip(values, low, high) if clip else values
      out[split][name] = ((values - mean) / std).astype(np.float32).reshape(-1, 1)
  return out


def _dnn(inputs, labels: np.ndarray, loss: str, epochs: int, seed: int) -> Dict[str, np.ndarray]:
  keras.utils.set_random_seed(seed)
  model = clv.build_model({name: 1 for name in inputs['train']}, [64, 32], 0.2, loss,
                          clv.initial_output_bias(tf.constant(labels), loss))
  model.compile(optimizer=keras.optimizers.Adam(0.002), loss=clv.ziln_loss if loss == 'ziln' else 'mse')
  train = (tf.data.Dataset.from_tensor_slices((inputs['train'], labels.astype(np.float32)))
           .shuffle(len(labels), seed=seed).batch(256))
  model.fit(train, epochs=epochs, verbose=0)
  return {split: clv.predicted_value(model.predict(values, batch_size=4096, verbose=0), loss).numpy()
          for split, values in inputs.items() if split != 'train'}


def _row(labels, predictions) -> Dict[str, float]:
  stats = metrics.regression_summary(labels, predictions)
  return {'mae': stats['mean_absolute_error'], 'rmse': stats['root_mean_squared_error'],
          'gini': metrics.normalized_gini(labels, predictions),
          'total_ratio': float(np.sum(predictions) / np.sum(labels))}


def backtest(purchases, cut: datetime.date, horizon: int, variant: str, epochs: int, seed: int = 42
             ) -> Dict[str, Any]:
  """{'eval_mae': {model: MAE}, 'champion': name, 'future': {model: metrics}} for one variant at one cut."""
  threshold = cut - datetime.timedelta(days=horizon)
  known = {c: [p for p in items if p[0] <= cut] for c, items in purchases.items()}
  training = _frame(known, threshold, cut)
  training = training[training['total_spend'] <= 4000.0]
  split = np.array([clv.assign_split(c, 20, seed) for c in training.index])
  score = _frame(known, cut, cut)
  score['label'] = [clv.spend_between(purchases[c], cut, cut + datetime.timedelta(days=horizon)) for c in score.index]
  frames = {'train': training[split == 'train'].copy(), 'eval': training[split == 'eval'].copy(), 'score': score}
  _with_btyd(frames, horizon)
  log_features, linear_features, loss, clip = VARIANTS[variant]
  dnn = _dnn(_transform(frames, log_features, linear_features, clip), frames['train']['label'].to_numpy(float), loss,
             epochs, seed)
  mean = frames['train']['label'].mean()
  eval_labels = frames['eval']['label'].to_numpy(float)
  eval_mae = {'dnn': float(np.abs(dnn['eval'] - eval_labels).mean()),
              'btyd': float(np.abs(frames['eval']['btyd_clv'].to_numpy() - eval_labels).mean()),
              'mean': float(np.abs(mean - eval_labels).mean())}
  champion = min(eval_mae, key=eval_mae.get)
  future = score['label'].to_numpy(float)
  candidates = {'dnn': dnn['score'], 'btyd': score['btyd_clv'].to_numpy(float),
                'naive': score['spend_last_%d' % horizon].to_numpy(float) if f'spend_last_{horizon}' in score
                else np.array([clv.spend_between(known[c], threshold, cut) for c in score.index]),
                'mean': np.full(len(score), mean)}
  candidates['headline'] = candidates[champion]
  return {'eval_mae': eval_mae, 'champion': champion,
          'future': {name: _row(future, values) for name, values in candidates.items()}}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--cuts', default='1998-02-28,1997-12-31')
  parser.add_argument('--horizon', type=int, default=120)
  parser.add_argument('--variants', default=','.join(VARIANTS))
  parser.add_argument('--epochs', type=int, default=30)
  parser.add_argument('--data', default=DATA)
  args = parser.parse_args(argv)
  purchases = _purchases(args.data)
  print('variant | cut | champion (eval MAE dnn/btyd/mean) | model | future MAE | RMSE | Gini | total ratio')
  for variant in args.variants.split(','):
    for cut in args.cuts.split(','):
      result = backtest(purchases, clv.parse_date(cut), args.horizon, variant, args.epochs)
      e = result['eval_mae']
      for name in ('headline', 'dnn', 'btyd', 'naive'):
        r = result['future'][name]
        print(f"{variant} | {cut} | {result['champion']} ({e['dnn']:.2f}/{e['btyd']:.2f}/{e['mean']:.2f}) | {name} | "
              f"{r['mae']:.3f} | {r['rmse']:.2f} | {r['gini']:.3f} | {r['total_ratio']:.3f}", flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
