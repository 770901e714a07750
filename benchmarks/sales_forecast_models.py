"""Sales forecast: every baseline and model variant on the eval months of one or more invoice files.

  python benchmarks/sales_forecast_models.py FILE.csv [FILE.csv ...] [--variants default,no_gru] [--epochs 30]

Builds the item-month examples with the module's own code (parse_sale, item_examples: what build_examples runs
in Beam), computes the Transform features with the module's scaled_features (the category vocabulary in
NumPy), trains modules.sales_forecast.fit per variant (settings of the pipeline's SETTINGS overridden by
VARIANTS) and prints MAE, RMSE, WAPE and MASE of each baseline and variant on the eval split, with the ratio of
MAE to the best baseline's. Files of several data sources: data/sales_forecast/sales.csv and the output of
`python -m pipelines.sales_forecast.second_generator OUT.csv --seed N`.
"""
import argparse
import collections
import csv
import os
import time
from typing import Any, Dict, List, Tuple

import numpy as np
import tensorflow as tf

# pylint: disable=g-import-not-at-top,wrong-import-position
from modules import sales_forecast as sf
from pipelines.sales_forecast import methods
from pipelines.sales_forecast.pipeline import SETTINGS, line_to_row

# Variant name -> settings changed from the pipeline's SETTINGS.
VARIANTS: Dict[str, Dict[str, Any]] = {
    'default': {},
    'gru': {'gru_units': 16},
    'scaled_loss': {'loss': 'scaled'},
    'no_regularization': {'l2': 0.0, 'dropout': 0.0},
    'epoch_selection': {'validation_months': 3},
    'faster': {'learning_rate': 0.01},
    'wider': {'hidden_units': '64,32'},
}


def examples(path: str, eval_months: int) -> Dict[str, List[Dict[str, Any]]]:
  """split -> examples of one CSV file, as build_examples makes them."""
  with open(path) as f:
    header = next(csv.reader(f))
    by_item = collections.defaultdict(list)
    for line in f.read().splitlines():
      sale, _ = sf.parse_sale(line_to_row(line, header))
      if sale:
        by_item[sale.item_number].append(sale)
  last_month = max(sf.month_index(s.day) for sales in by_item.values() for s in sales)
  splits = collections.defaultdict(list)
  for item, sales in sorted(by_item.items()):
    for split, example in sf.item_examples(item, sales, last_month, eval_months):
      splits[split].append(example)
  return splits


def transformed(rows: List[Dict[str, Any]], vocabulary: Dict[str, int]) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """(model features, log1p labels) as preprocessing_fn makes them."""
  names = {name for name in rows[0] if not isinstance(rows[0][name], str)}
  inputs = {name: tf.constant(np.array([r[name] for r in rows])) for name in names}
  features = {name: t.numpy() for name, t in sf.scaled_features(inputs).items()}
  features['category_name_id'] = np.array([vocabulary.get(r[sf.SLICE_FEATURE], len(vocabulary)) for r in rows])
  return features, np.log1p(np.array([r[sf.LABEL] for r in rows], dtype=np.float32)).reshape(-1, 1)


def run(path: str, variants: List[str], epochs: int) -> None:
  """Prints the baselines' and each variant's eval metrics on one file."""
  splits = examples(path, int(SETTINGS['eval_months']))
  train, evaluation = splits['train'], splits['eval']
  labels = np.array([r[sf.LABEL] for r in evaluation])
  scales = np.array([r[sf.MASE_SCALE] for r in evaluation])
  print(f'\n{os.path.basename(path)}: {len(train)} train and {len(evaluation)} eval item-months, '
        f'{len({r[sf.KEY] for r in train + evaluation})} items')
  results = {name: methods.metrics(labels, np.array([r[feature] for r in evaluation]), scales)
             for name, feature in sf.BASELINES.items()}
  best = min(sf.BASELINES, key=lambda name: results[name]['mae'])
  categories = collections.Counter(r[sf.SLICE_FEATURE] for r in train)
  vocabulary = {c: i for i, (c, _) in enumerate(categories.most_common())}
  train_features, train_labels = transformed(train, vocabulary)
  eval_features, _ = transformed(evaluation, vocabulary)
  months = np.array([r[sf.MONTH] for r in train])
  for variant in variants:
    config = {**SETTINGS, 'epochs': epochs, **VARIANTS[variant]}
    started = time.time()
    model, chosen = sf.fit(train_features, train_labels, months, len(vocabulary) + 1, config)
    forecasts = sf.forecast_from_output(model.predict({k: eval_features[k] for k in model.input_names}, verbose=0,
                                                      batch_size=4096)).numpy()
    results[f'model:{variant}'] = {**methods.metrics(labels, forecasts, scales),
                                   'note': f'anchor {chosen["anchor"]}, epoch {chosen["best_epoch"]}, '
                                           f'{time.time() - started:.0f}s'}
  print(f'{"method":28s} {"MAE":>9s} {"RMSE":>9s} {"WAPE":>7s} {"MASE":>7s} {"MAE/best":>8s}')
  for name, values in results.items():
    print(f'{name:28s} {values["mae"]:9.2f} {values["rmse"]:9.2f} {values["wape"]:7.3f} {values["mase"]:7.3f} '
          f'{values["mae"] / results[best]["mae"]:8.3f} {values.get("note", "")}')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('files', nargs='+')
  parser.add_argument('--variants', default=','.join(VARIANTS))
  parser.add_argument('--epochs', type=int, default=int(SETTINGS['epochs']))
  args = parser.parse_args()
  for path in args.files:
    run(path, args.variants.split(','), args.epochs)


if __name__ == '__main__':
  main()
