"""Out-of-time backtest of the CLV pipeline: trained and scored as of a cut date, checked against the future.

`python -m pipelines backtest clv --cut DATE [--horizon DAYS]` writes the input rows up to the cut to
`<output>/clv/backtest_input.csv`, runs the pipeline on them with threshold_date = cut - horizon and
predict_end = cut, and compares every scored customer's predictions with its actual spend in
(cut, cut + horizon], read from the same file (the pipeline never sees it): the headline `predicted_value`
of predictions.csv, the DNN (the Trainer's model, whether or not it won), BTYD (`btyd_clv`), the naive
forecast (the customer's spend in (cut - horizon, cut]) and the training mean. Results: backtest.json,
backtest.md and backtest_deciles.png in the run's output directory, `backtest` in summary.json and a
section appended to report.md.
"""
import csv
import datetime
import json
import os
import sys
from typing import IO, Any, Callable, Dict, List, Optional

import numpy as np

from modules import clv as clv_module
from pipelines import metrics

JSON_FILE = 'backtest.json'
MARKDOWN_FILE = 'backtest.md'
PLOT_FILE = 'backtest_deciles.png'
INPUT_FILE = 'backtest_input.csv'
MODELS = ('headline', 'dnn', 'btyd', 'naive', 'mean')


class BacktestError(ValueError):
  """The backtest cannot run on this input (one line for the user)."""


def split_at_cut(data: str, cut: datetime.date, horizon: int, destination: str
                 ) -> Dict[str, Any]:
  """Copies the rows dated up to `cut` (and unparsable rows, which the pipeline counts) to `destination`.

  Returns {'future': {customer: spend in (cut, cut + horizon]}, 'last_window': {customer: spend in
  (cut - horizon, cut]}, 'last_date': the latest valid date, 'rows_kept': rows copied, 'rows_future':
  rows after the cut}.
  """
  future: Dict[str, float] = {}
  last_window: Dict[str, float] = {}
  last_date: Optional[datetime.date] = None
  kept = after = 0
  window_start = cut - datetime.timedelta(days=horizon)
  end = cut + datetime.timedelta(days=horizon)
  with open(data, newline='') as source, open(destination, 'w', newline='') as target:
    reader = csv.DictReader(source)
    writer = csv.DictWriter(target, fieldnames=reader.fieldnames)
    writer.writeheader()
    for row in reader:
      parsed, _ = clv_module.parse_transaction(row)
      if parsed is not None:
        customer, (day, _, amount) = parsed
        last_date = day if last_date is None else max(last_date, day)
        if day > cut:
          after += 1
          if day <= end:
            future[customer] = future.get(customer, 0.0) + amount
          continue
        if day > window_start:
          last_window[customer] = last_window.get(customer, 0.0) + amount
      writer.writerow(row)
      kept += 1
  return {'future': future, 'last_window': last_window, 'last_date': last_date, 'rows_kept': kept,
          'rows_future': after}


def compare(actual: np.ndarray, predictions: Dict[str, np.ndarray]) -> Dict[str, Dict[str, Any]]:
  """Per model: MAE, RMSE, normalized Gini, predicted and actual totals, their ratio and the decile table
  (deciles of that model's prediction, decile 1 the highest)."""
  results = {}
  for name, predicted in predictions.items():
    stats = metrics.regression_summary(actual, predicted)
    results[name] = {
        'mean_absolute_error': stats['mean_absolute_error'],
        'root_mean_squared_error': stats['root_mean_squared_error'],
        'normalized_gini': metrics.normalized_gini(actual, predicted),
        'predicted_total': float(np.sum(predicted)),
        'actual_total': float(np.sum(actual)),
        'total_ratio': float(np.sum(predicted) / np.sum(actual)) if np.sum(actual) else float('nan'),
        'deciles': metrics.decile_table(actual, predicted),
    }
  return results


def _artifact(nodes, node_id: str, key: str):
  artifacts = nodes[node_id].outputs.get(key) if node_id in nodes else None
  return artifacts[-1] if artifacts else None


def finite(value: Any) -> Any:
  """`value` with every NaN or infinite float (in nested dicts and lists) replaced by None."""
  if isinstance(value, dict):
    return {k: finite(v) for k, v in value.items()}
  if isinstance(value, list):
    return [finite(v) for v in value]
  if isinstance(value, float) and not np.isfinite(value):
    return None
  return value


def _dnn_predictions(nodes, customers: List[str]) -> Optional[np.ndarray]:
  """The Trainer's model on the score split BtydFit wrote, in `customers` order (None without a model)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from pipelines.clv import btyd  # pylint: disable=g-import-not-at-top
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  model, scored = _artifact(nodes, 'Trainer', 'model'), _artifact(nodes, 'BtydFit', 'predictions')
  if model is None or scored is None:
    return None
  artifact = tfx.types.standard_artifacts.Examples()
  artifact.uri = scored.uri
  artifact.split_names = '["eval", "score"]'
  examples = btyd.read_examples(artifact, 'score')
  serve = tf.saved_model.load(os.path.join(model.uri, 'Format-Serving')).signatures['serving_default']
  by_customer = {}
  for start in range(0, len(examples), 4096):
    batch = examples[start:start + 4096]
    values = serve(examples=tf.constant([e.SerializeToString() for e in batch]))[clv_module.PREDICTION].numpy()
    for example, value in zip(batch, values):
      by_customer[example.features.feature[clv_module.KEY].bytes_list.value[0].decode()] = float(value)
  return np.array([by_customer[c] for c in customers])


def _deciles_plot(results: Dict[str, Dict[str, Any]], path: str, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = [n for n in MODELS if n in results and n != 'mean']
  figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6), sharey=True)
  for axis, name in zip(np.atleast_1d(axes), names):
    rows = results[name]['deciles']
    deciles = [r['decile'] for r in rows]
    axis.bar(np.array(deciles) - 0.2, [r['mean_prediction'] for r in rows], 0.4, label='predicted')
    axis.bar(np.array(deciles) + 0.2, [r['mean_label'] for r in rows], 0.4, label='actual')
    axis.set_title(f"{name}: MAE {results[name]['mean_absolute_error']:.2f}")
    axis.set_xlabel('decile of the prediction')
  np.atleast_1d(axes)[0].set_ylabel('mean spend per customer')
  np.atleast_1d(axes)[0].legend()
  figure.suptitle(title)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def _number(value: Optional[float], digits: int = 4) -> str:
  return 'n/a' if value is None else f'{value:.{digits}g}'


def markdown(backtest: Dict[str, Any]) -> str:
  """The backtest as a markdown section: the window, the table of models, the decile plot."""
  lines = [f"## Backtest at {backtest['cut']} ({backtest['horizon_days']} days)", '',
           f"Trained on labels in ({backtest['threshold_date']}, {backtest['cut']}], scored as of {backtest['cut']}, "
           f"compared with the actual spend of {backtest['customers']} customers in ({backtest['cut']}, "
           f"{backtest['future_end']}]. Headline: `{backtest['headline_by']}`.", '',
           '| model | MAE | RMSE | normalized Gini | predicted total | actual total | total ratio |',
           '|---|---|---|---|---|---|---|']
  for name, r in backtest['models'].items():
    cells = [_number(r['mean_absolute_error']), _number(r['root_mean_squared_error']),
             _number(r['normalized_gini']), _number(r['predicted_total'], 6), _number(r['actual_total'], 6),
             _number(r['total_ratio'])]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines + ['', f'![backtest deciles]({PLOT_FILE})', '']) + '\n'


def run(data: str, cut: str, horizon: int, output: str, settings: List[str],
        run_pipeline: Callable[[List[str]], int], out: IO[str] = sys.stdout) -> int:
  """Runs the backtest (see the module docstring); returns the pipeline's exit code (0 on success).

  run_pipeline: the CLI's main (`python -m pipelines` argv -> exit code); `out`: where the result line goes.
  BacktestError for a cut the data cannot check (no complete future window after it).
  """
  try:
    cut_date = clv_module.parse_date(cut)
  except ValueError:
    raise BacktestError(f'--cut must be a date (YYYY-MM-DD), got {cut!r}') from None
  if horizon <= 0:
    raise BacktestError(f'--horizon must be a positive number of days, got {horizon}')
  threshold = cut_date - datetime.timedelta(days=horizon)
  out_dir = os.path.abspath(os.path.join(output, 'clv'))
  os.makedirs(out_dir, exist_ok=True)
  split = split_at_cut(data, cut_date, horizon, os.path.join(out_dir, INPUT_FILE))
  future_end = cut_date + datetime.timedelta(days=horizon)
  if split['last_date'] is None or split['last_date'] < future_end:
    raise BacktestError(f'{data} ends on {split["last_date"]}: a backtest at {cut} needs data up to {future_end} '
                        f'(cut + {horizon} days); choose an earlier --cut or a shorter --horizon')
  code = run_pipeline(['run', 'clv', '--data', os.path.join(out_dir, INPUT_FILE), '--output', output,
                       '--set', f'threshold_date={threshold.isoformat()}', '--set', f'predict_end={cut}']
                      + [arg for s in settings for arg in ('--set', s)])
  if code:
    return code
  summary_path = os.path.join(out_dir, 'summary.json')
  with open(summary_path) as f:
    summary = json.load(f)
  backtest = evaluate(summary, out_dir, split, cut_date, horizon, threshold)
  summary['backtest'] = backtest
  summary['outputs'].update({'backtest': os.path.join(out_dir, JSON_FILE),
                             'backtest_report': os.path.join(out_dir, MARKDOWN_FILE),
                             'backtest_plot': os.path.join(out_dir, PLOT_FILE)})
  with open(summary_path, 'w') as f:
    json.dump(summary, f, indent=2, default=str)
  with open(os.path.join(out_dir, 'report.md'), 'a') as f:
    f.write('\n' + markdown(backtest))
  headline = backtest['models']['headline']
  print(f"clv backtest at {cut}: headline ({backtest['headline_by']}) MAE {headline['mean_absolute_error']:.3f}, "
        f"total ratio {headline['total_ratio']:.3f}; " + ', '.join(
            f"{n} {r['mean_absolute_error']:.3f}" for n, r in backtest['models'].items() if n != 'headline')
        + f"; {os.path.join(out_dir, MARKDOWN_FILE)}", file=out)
  return 0


def evaluate(summary: Dict[str, Any], out_dir: str, split: Dict[str, Any], cut: datetime.date, horizon: int,
             threshold: datetime.date) -> Dict[str, Any]:
  """Compares the run's predictions with the future; writes backtest.json, backtest.md and the plot."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from pipelines import report  # pylint: disable=g-import-not-at-top
  predictions_path = summary['outputs'].get('predictions')
  frame = pd.read_csv(predictions_path, dtype={clv_module.KEY: str}) if predictions_path else None
  if frame is None or frame.empty:
    raise BacktestError(f'the run wrote no predictions (blessed: {summary.get("blessed")}); nothing to backtest')
  frame = frame.sort_values(clv_module.KEY)
  customers = frame[clv_module.KEY].tolist()
  actual = np.array([split['future'].get(c, 0.0) for c in customers])
  nodes = report.latest_run(os.path.join(out_dir, 'metadata.sqlite'), 'clv')
  candidates = {'headline': frame[clv_module.PREDICTION].to_numpy(float)}
  dnn = _dnn_predictions(nodes, customers)
  if dnn is not None:
    candidates['dnn'] = dnn
  candidates['btyd'] = frame['btyd_clv'].to_numpy(float)
  candidates['naive'] = np.array([split['last_window'].get(c, 0.0) for c in customers])
  train_mean = summary.get('metrics', {}).get('baseline', {}).get('mean_prediction')
  if train_mean is not None:
    candidates['mean'] = np.full(len(customers), float(train_mean))
  results = compare(actual, candidates)
  headline_by = (frame['predicted_by'].value_counts().idxmax() if 'predicted_by' in frame else 'dnn')
  backtest = {'cut': cut.isoformat(), 'horizon_days': horizon, 'threshold_date': threshold.isoformat(),
              'future_end': (cut + datetime.timedelta(days=horizon)).isoformat(), 'customers': len(customers),
              'customers_first_seen_after_cut': len(set(split['future']) - set(customers)),
              'rows_after_cut': split['rows_future'], 'headline_by': str(headline_by), 'models': finite(results)}
  with open(os.path.join(out_dir, JSON_FILE), 'w') as f:
    json.dump(backtest, f, indent=2)
  with open(os.path.join(out_dir, MARKDOWN_FILE), 'w') as f:
    f.write(markdown(backtest))
  _deciles_plot(results, os.path.join(out_dir, PLOT_FILE),
                f'Backtest at {cut.isoformat()}: {horizon}-day spend per decile of each prediction')
  return backtest
