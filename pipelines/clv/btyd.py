"""BtydFit: probabilistic CLV ("buy 'til you die") models as a baseline for the DNN.

A purchase-count model -- BG/NBD ('bgnbd'), Pareto/NBD ('pnbd') or MBG/NBD ('mbgnbd'), all from `lifetimes`
-- and a Gamma-Gamma spend model fitted on the per-customer summary that `modules.clv.customer_features`
computes: frequency (repeat purchase days), recency and T (in days), monetary_value (mean spend of the
repeat purchase days). The pure functions (`to_time_unit`, `fit_btyd`, `FittedBtyd.predict`, `load_fitted`)
need no TFX; the `BtydFit` component reads the customer Examples, fits on one split and writes the fitted
model and the `eval` and `score` examples with the BTYD predictions added as features.

Penalizer: lifetimes' L2 penalty on the parameters. Its scale differs by model: BG/NBD, MBG/NBD and
Gamma-Gamma add it to the mean negative log-likelihood per customer, Pareto/NBD to the total, so the same
coefficient shrinks P/NBD far less.
"""
import dataclasses
import json
import math
import numbers
import os
import tempfile
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import logging
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from lifetimes.fitters import BaseFitter
from lifetimes.utils import ConvergenceError
from tfx import v1 as tfx
from tfx.types import artifact_utils

from pipelines import artifacts, beam_io

MODELS = {'bgnbd': BetaGeoFitter, 'pnbd': ParetoNBDFitter, 'mbgnbd': ModifiedBetaGeoFitter}
SPEND_MODEL = 'gamma_gamma'
TIME_UNITS = {'days': 1.0, 'weeks': 7.0}  # length of one unit in days
SUMMARY_COLUMNS = ['frequency', 'recency', 'T', 'monetary_value']
PREDICTION_COLUMNS = ['expected_purchases', 'p_alive', 'expected_spend', 'clv']
FEATURE_PREFIX = 'btyd_'
PREDICT_SPLITS = ['eval', 'score']
PARAMS_FILE = 'params.json'
FITTER_FILES = {'purchase_model': 'purchase_model.pkl', 'spend_model': 'spend_model.pkl'}
PREDICTIONS_FILE = 'data_tfrecord-00000-of-00001.gz'
RETRIES = 3  # after the first attempt, each with a 10x larger penalizer
MIN_RETRY_PENALIZER = 1e-4
DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12
HESSIAN_STEP = 1e-3  # in log-parameter space

# (frequency, recency, T, weights) or (frequency, monetary_value, weights): the arrays a fitter was fitted on.
FitData = Tuple[np.ndarray, ...]


class _NotConverged(Exception):
  """A fit ended with parameters or standard errors that are not finite numbers."""


# ---------------------------------------------------------------------------------------------------
# Validation and time units
# ---------------------------------------------------------------------------------------------------

def _check_choice(name: str, value: str, choices) -> None:
  if value not in choices:
    raise ValueError(f'Unknown {name} {value!r}; expected one of {sorted(choices)}')


def _check_non_negative(name: str, value: float) -> None:
  if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
    raise ValueError(f'{name} must be a finite number >= 0, got {value!r}')


def _check_summary(summary: pd.DataFrame) -> None:
  missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
  if missing:
    raise ValueError(f'The customer summary lacks columns {missing}; it has {list(summary.columns)}')
  if summary.empty:
    raise ValueError('The customer summary is empty')
  values = summary[SUMMARY_COLUMNS].to_numpy(dtype=float)
  if not np.isfinite(values).all():
    raise ValueError(f'The customer summary has {int((~np.isfinite(values)).any(axis=1).sum())} rows '
                     f'with missing or infinite values in {SUMMARY_COLUMNS}')
  if (values < 0).any():
    raise ValueError(f'The customer summary has negative values in {SUMMARY_COLUMNS}')


def to_time_unit(df_days: pd.DataFrame, unit: str) -> pd.DataFrame:
  """A copy of a summary in days with recency and T in `unit` ('days' or 'weeks' = days / 7).

  frequency and monetary_value (counts and money) do not change.
  """
  _check_choice('time unit', unit, TIME_UNITS)
  df = df_days.copy()
  for column in ('recency', 'T'):
    df[column] = df[column].astype(float) / TIME_UNITS[unit]
  return df


# ---------------------------------------------------------------------------------------------------
# Fitting with retries
# ---------------------------------------------------------------------------------------------------

def _penalizer_schedule(penalizer_coef: float) -> List[float]:
  base = max(penalizer_coef, MIN_RETRY_PENALIZER)
  return [penalizer_coef] + [base * 10 ** k for k in range(1, RETRIES + 1)]


def _log_likelihood(fitter: BaseFitter, params: np.ndarray, data: FitData) -> float:
  """Total log-likelihood of `data` at `params` (original scale) without the penalty, by lifetimes' formula."""
  *columns, weights = data
  if isinstance(fitter, ParetoNBDFitter):  # takes the parameters themselves, divides by weights.mean()
    return -float(fitter._negative_log_likelihood(params, *columns, weights, 0.0)) * weights.mean()  # pylint: disable=protected-access
  return -float(fitter._negative_log_likelihood(np.log(params), *columns, weights, 0.0)) * weights.sum()  # pylint: disable=protected-access


def _numeric_hessian(f: Callable[[np.ndarray], float], x: np.ndarray, step: float = HESSIAN_STEP) -> np.ndarray:
  """Central finite-difference Hessian of f at x."""
  shifts = np.eye(len(x)) * step
  hessian = np.zeros((len(x), len(x)))
  for i in range(len(x)):
    for j in range(i, len(x)):
      hessian[i, j] = hessian[j, i] = (
          f(x + shifts[i] + shifts[j]) - f(x + shifts[i] - shifts[j])
          - f(x - shifts[i] + shifts[j]) + f(x - shifts[i] - shifts[j])) / (4 * step * step)
  return hessian


def _standard_errors(fitter: BaseFitter, data: FitData) -> pd.Series:
  """lifetimes' standard errors; for P/NBD (fitted by Nelder-Mead, no Hessian) from a numeric Hessian.

  Both are the delta method on the observed information in log-parameter space: se = param * se(log param).
  """
  if hasattr(fitter, 'standard_errors_'):
    return fitter.standard_errors_
  params = fitter.params_.to_numpy()
  hessian = _numeric_hessian(lambda log_params: -_log_likelihood(fitter, np.exp(log_params), data), np.log(params))
  try:
    log_variance = np.diag(np.linalg.inv(hessian))
  except np.linalg.LinAlgError:
    log_variance = np.full(len(params), np.nan)
  with np.errstate(invalid='ignore'):
    return pd.Series(params * np.sqrt(log_variance), index=fitter.params_.index)


def _sub_model_report(name: str, fitter: BaseFitter, data: FitData, penalizer_coef: float,
                      attempts: int) -> Dict[str, Any]:
  standard_errors = _standard_errors(fitter, data)
  values = np.concatenate([fitter.params_.to_numpy(), standard_errors.to_numpy()])
  if not np.isfinite(values).all():
    raise _NotConverged(f'parameters {fitter.params_.to_dict()}, standard errors {standard_errors.to_dict()}')
  return {
      'name': name,
      'params': {k: float(v) for k, v in fitter.params_.items()},
      'standard_errors': {k: float(v) for k, v in standard_errors.items()},
      'log_likelihood': _log_likelihood(fitter, fitter.params_.to_numpy(), data),
      'n_customers': int(data[-1].sum()),
      'penalizer_coef': penalizer_coef,
      'attempts': attempts,
  }


def _fit_with_retries(name: str, fit_once: Callable[[float], BaseFitter], data: FitData, penalizer_coef: float,
                      describe_data: str) -> Tuple[BaseFitter, Dict[str, Any]]:
  """Fits, retrying with a 10x larger penalizer on a convergence failure; ValueError if all attempts fail.

  A failure: lifetimes' ConvergenceError, or parameters or standard errors that are not finite (the
  likelihood has no proper maximum, e.g. a parameter runs to 0 or infinity).
  """
  schedule = _penalizer_schedule(penalizer_coef)
  failures = []
  for attempt, penalizer in enumerate(schedule, start=1):
    try:
      fitter = fit_once(penalizer)
      report = _sub_model_report(name, fitter, data, penalizer, attempt)
    except (ConvergenceError, _NotConverged, np.linalg.LinAlgError) as error:
      reason = ' '.join(str(error).split()) or type(error).__name__
      logging.warning('%s fit did not converge with penalizer_coef=%g (attempt %d of %d): %s',
                      name, penalizer, attempt, len(schedule), reason)
      failures.append(f'{penalizer:g}: {reason}')
      continue
    logging.info('%s fitted with penalizer_coef=%g (attempt %d): params %s, log-likelihood %.2f',
                 name, penalizer, attempt, report['params'], report['log_likelihood'])
    return fitter, report
  raise ValueError(f'{name} did not converge with penalizer_coef {schedule} ({"; ".join(failures)}). '
                   f'Data: {describe_data}. Too few repeat customers, or degenerate purchase patterns, '
                   'leave the model without a proper maximum-likelihood fit.')


def _describe_purchases(summary: pd.DataFrame, unit: str) -> str:
  frequency = summary['frequency']
  return (f'{len(summary)} customers, {int((frequency == 0).sum())} with frequency 0, '
          f'{int((frequency > 0).sum())} repeat customers, max frequency {frequency.max():g}, '
          f'max recency {summary["recency"].max():.4g} {unit}, T from {summary["T"].min():.4g} '
          f'to {summary["T"].max():.4g} {unit}')


def _describe_spend(repeat: pd.DataFrame) -> str:
  spend = repeat['monetary_value']
  return (f'{len(repeat)} repeat customers with positive spend, max frequency {repeat["frequency"].max():g}, '
          f'monetary_value min {spend.min():.4g} median {spend.median():.4g} max {spend.max():.4g}, '
          f'{spend.nunique()} distinct values')


def _purchase_patterns(summary: pd.DataFrame) -> FitData:
  """Distinct (frequency, recency, T) with their customer counts as weights (same likelihood, fewer rows)."""
  patterns = summary.groupby(['frequency', 'recency', 'T']).size().reset_index(name='weights')
  return (patterns['frequency'].to_numpy(dtype=int), patterns['recency'].to_numpy(dtype=float),
          patterns['T'].to_numpy(dtype=float), patterns['weights'].to_numpy(dtype=int))


def _fit_purchases(model: str, data: FitData, penalizer: float) -> BaseFitter:
  fitter = MODELS[model](penalizer_coef=penalizer)
  frequency, recency, T, weights = data
  if model == 'pnbd':  # lifetimes starts P/NBD at random; this is the centre of its random start
    return fitter.fit(frequency, recency, T, weights=weights, initial_params=np.ones(4))
  return fitter.fit(frequency, recency, T, weights=weights)


def _fit_spend(data: FitData, penalizer: float) -> GammaGammaFitter:
  frequency, monetary_value, weights = data
  return GammaGammaFitter(penalizer_coef=penalizer).fit(frequency, monetary_value, weights=weights)


def fit_btyd(summary: pd.DataFrame, model: str, penalizer_coef: float, time_unit: str = 'days') -> 'FittedBtyd':
  """Fits a purchase model and a Gamma-Gamma spend model to a customer summary.

  Args:
    summary: one row per customer with frequency, recency, T (in `time_unit`) and monetary_value.
    model: 'bgnbd' (BG/NBD), 'pnbd' (Pareto/NBD) or 'mbgnbd' (MBG/NBD).
    penalizer_coef: lifetimes' L2 penalizer (>= 0) for both models; on a convergence failure each model is
      refitted with a 10x larger one, starting from max(penalizer_coef, 1e-4), up to 3 times.
    time_unit: the unit of recency and T ('days' or 'weeks'); kept with the model (predictions and
      discounting use it).

  Gamma-Gamma is fitted on the repeat customers (frequency > 0) with positive monetary_value.
  Raises ValueError on invalid arguments, without repeat customers, when every attempt fails (the message
  describes the data), or when Gamma-Gamma's q <= 1 (no finite mean spend).
  """
  _check_choice('model', model, MODELS)
  _check_choice('time unit', time_unit, TIME_UNITS)
  _check_non_negative('penalizer_coef', penalizer_coef)
  _check_summary(summary)
  if not (summary['frequency'] > 0).any():
    raise ValueError(f'Cannot fit {model}: no customer has a repeat purchase ({_describe_purchases(summary, time_unit)}); '
                     'BTYD models need repeat purchases to estimate purchase rates and dropout.')
  purchase_data = _purchase_patterns(summary)
  purchase_fitter, purchase_report = _fit_with_retries(
      model, lambda p: _fit_purchases(model, purchase_data, p), purchase_data, penalizer_coef,
      _describe_purchases(summary, time_unit))

  repeat = summary[(summary['frequency'] > 0) & (summary['monetary_value'] > 0)]
  skipped = int((summary['frequency'] > 0).sum()) - len(repeat)
  if skipped:
    logging.warning('Gamma-Gamma: %d repeat customers with monetary_value 0 left out of the fit', skipped)
  if repeat.empty:
    raise ValueError('Cannot fit Gamma-Gamma: every repeat customer has monetary_value 0')
  spend_data = (repeat['frequency'].to_numpy(dtype=int), repeat['monetary_value'].to_numpy(dtype=float),
                np.ones(len(repeat), dtype=int))
  spend_fitter, spend_report = _fit_with_retries(
      SPEND_MODEL, lambda p: _fit_spend(spend_data, p), spend_data, penalizer_coef, _describe_spend(repeat))
  p, q, v = spend_fitter.params_[['p', 'q', 'v']]
  if q <= 1:
    raise ValueError(f'Gamma-Gamma fitted q={q:.4g} <= 1: the spend distribution has no finite mean '
                     f'({_describe_spend(repeat)}). Cap extreme monetary values or use more customers.')
  spend_report['population_mean_spend'] = float(p * v / (q - 1))
  report = {'model': model, 'time_unit': time_unit, 'purchase_model': purchase_report, 'spend_model': spend_report}
  return FittedBtyd(model, time_unit, purchase_fitter, spend_fitter, report)


# ---------------------------------------------------------------------------------------------------
# The fitted model: parameters, predictions, saving and loading
# ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class FittedBtyd:
  """A fitted purchase model and Gamma-Gamma spend model, both in `time_unit`."""
  model: str
  time_unit: str
  purchase_fitter: BaseFitter
  spend_fitter: GammaGammaFitter
  report: Dict[str, Any]

  def params(self) -> Dict[str, Any]:
    """model, time_unit, and per sub-model ('purchase_model', 'spend_model'): name, params, standard_errors,
    log_likelihood (total, without the penalty), n_customers, penalizer_coef and attempts it took;
    spend_model also has population_mean_spend (p * v / (q - 1))."""
    return json.loads(json.dumps(self.report))

  def predict(self, summary: pd.DataFrame, horizon: float, annual_discount_rate: float = 0.0) -> pd.DataFrame:
    """Per customer (index of `summary`, recency and T in this model's time unit), over the next `horizon`
    time units:

    expected_purchases: expected repeat purchases in (T, T + horizon].
    p_alive: probability that the customer is still active at T.
    expected_spend: Gamma-Gamma expected spend per purchase given frequency and monetary_value (for
      frequency 0 this is the population mean p * v / (q - 1)).
    clv: expected_spend times the expected purchases, discounted per month: the horizon is cut into months
      of 365.25 / 12 days (the last one partial) and the purchases expected in month k are discounted by
      (1 + annual_discount_rate) ** -(end of month k in years). With a rate of 0, clv = expected_purchases *
      expected_spend.
    """
    _check_summary(summary)
    _check_non_negative('horizon', horizon)
    _check_non_negative('annual_discount_rate', annual_discount_rate)
    frequency = summary['frequency'].to_numpy(dtype=float)
    recency = summary['recency'].to_numpy(dtype=float)
    T = summary['T'].to_numpy(dtype=float)
    expected_purchases, discounted_purchases = self._purchases(frequency, recency, T, horizon, annual_discount_rate)
    expected_spend = np.asarray(self.spend_fitter.conditional_expected_average_profit(
        frequency, summary['monetary_value'].to_numpy(dtype=float)), dtype=float)
    return pd.DataFrame({
        'expected_purchases': expected_purchases,
        'p_alive': np.asarray(self.purchase_fitter.conditional_probability_alive(frequency, recency, T), dtype=float),
        'expected_spend': expected_spend,
        'clv': discounted_purchases * expected_spend,
    }, index=summary.index)

  def _purchases(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, horizon: float,
                 annual_discount_rate: float) -> Tuple[np.ndarray, np.ndarray]:
    """(expected purchases in the horizon, the same discounted per month)."""
    unit_days = TIME_UNITS[self.time_unit]
    month = DAYS_PER_MONTH / unit_days
    month_ends = np.minimum(np.arange(1, math.ceil(horizon / month) + 1) * month, horizon)
    cumulative = np.zeros(len(frequency))
    discounted = np.zeros(len(frequency))
    for end in month_ends:
      previous = cumulative
      cumulative = np.asarray(self.purchase_fitter.conditional_expected_number_of_purchases_up_to_time(
          end, frequency, recency, T), dtype=float)
      discounted += (cumulative - previous) * (1 + annual_discount_rate) ** -(end * unit_days / DAYS_PER_YEAR)
    return cumulative, discounted

  def save(self, directory: str) -> None:
    """Writes params.json and the two lifetimes fitters (its save_model pickles, without the data)."""
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(os.path.join(directory, PARAMS_FILE), 'w') as f:
      json.dump(self.report, f, indent=2, sort_keys=True)
    for fitter, file_name in ((self.purchase_fitter, FITTER_FILES['purchase_model']),
                              (self.spend_fitter, FITTER_FILES['spend_model'])):
      with tempfile.TemporaryDirectory() as tmp:  # lifetimes writes local files only
        local = os.path.join(tmp, file_name)
        fitter.save_model(local, save_data=False, save_generate_data_method=False)
        tf.io.gfile.copy(local, os.path.join(directory, file_name), overwrite=True)


def _load_fitter(fitter: BaseFitter, path: str) -> BaseFitter:
  with tempfile.TemporaryDirectory() as tmp:
    local = os.path.join(tmp, os.path.basename(path))
    tf.io.gfile.copy(path, local)
    fitter.load_model(local)
  return fitter


def load_fitted(uri: str) -> FittedBtyd:
  """Loads a FittedBtyd saved by `FittedBtyd.save` (the BtydFit model artifact's uri)."""
  with tf.io.gfile.GFile(os.path.join(uri, PARAMS_FILE)) as f:
    report = json.load(f)
  model = report['model']
  return FittedBtyd(
      model, report['time_unit'],
      _load_fitter(MODELS[model](), os.path.join(uri, FITTER_FILES['purchase_model'])),
      _load_fitter(GammaGammaFitter(), os.path.join(uri, FITTER_FILES['spend_model'])),
      report)


# ---------------------------------------------------------------------------------------------------
# The BtydFit component
# ---------------------------------------------------------------------------------------------------

def read_examples(examples: tfx.types.standard_artifacts.Examples, split: str) -> List[tf.train.Example]:
  """All tf.Examples of one split (GZIP TFRecords), in memory."""
  files = [path for path in artifacts.split_files(examples.uri, split) if path.endswith('.gz')]
  if not files:
    raise ValueError(f'No *.gz files in split {split!r} of {examples.uri}')
  return [tf.train.Example.FromString(record) for record in artifacts.read_records(files)]


def examples_summary(examples: List[tf.train.Example], time_unit: str) -> pd.DataFrame:
  """The BTYD summary columns of customer examples (durations in days), converted to `time_unit`."""
  rows = pd.DataFrame([beam_io.example_to_row(example) for example in examples])
  missing = [c for c in SUMMARY_COLUMNS if c not in rows.columns]
  if missing:
    raise ValueError(f'The examples lack features {missing}; they have {sorted(rows.columns)}')
  return to_time_unit(rows[SUMMARY_COLUMNS], time_unit)


def with_predictions(example: tf.train.Example, predictions: Dict[str, float]) -> tf.train.Example:
  """A copy of the example with `btyd_<name>` float features added (replacing features of that name)."""
  added = beam_io.row_to_example({FEATURE_PREFIX + name: float(value) for name, value in predictions.items()})
  result = tf.train.Example()
  result.CopyFrom(example)
  for name, feature in added.features.feature.items():
    result.features.feature[name].CopyFrom(feature)
  return result


def write_examples(examples: List[tf.train.Example], split_dir: str) -> None:
  """Writes examples as one GZIP TFRecord file in split_dir."""
  tf.io.gfile.makedirs(split_dir)
  with tf.io.TFRecordWriter(os.path.join(split_dir, PREDICTIONS_FILE), options='GZIP') as writer:
    for example in examples:
      writer.write(example.SerializeToString())


def _check_component_parameters(model_type: str, time_unit: str, penalizer_coef: float, horizon_days: float,
                                annual_discount_rate: float, fit_split: str, splits: List[str]) -> None:
  _check_choice('model', model_type, MODELS)
  _check_choice('time unit', time_unit, TIME_UNITS)
  _check_non_negative('penalizer_coef', penalizer_coef)
  _check_non_negative('horizon_days', horizon_days)
  _check_non_negative('annual_discount_rate', annual_discount_rate)
  missing = [s for s in [fit_split] + PREDICT_SPLITS if s not in splits]
  if missing:
    raise ValueError(f'The input examples lack split(s) {missing}; they have {splits}')


@tfx.dsl.components.component
def BtydFit(  # pylint: disable=invalid-name
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    model: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Model],
    predictions: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Examples],
    model_type: tfx.dsl.components.Parameter[str],
    penalizer_coef: tfx.dsl.components.Parameter[float],
    time_unit: tfx.dsl.components.Parameter[str],
    horizon_days: tfx.dsl.components.Parameter[float],
    annual_discount_rate: tfx.dsl.components.Parameter[float],
    fit_split: tfx.dsl.components.Parameter[str] = 'train') -> None:
  """Fits a BTYD model on one split of customer examples and adds its predictions to the eval and score splits.

  examples: customer examples with frequency, recency, T (days) and monetary_value (see
    `modules.clv.customer_features`), in splits `fit_split`, `eval` and `score`.
  model: params.json (see `FittedBtyd.params`) and the lifetimes fitters; load with `load_fitted(model.uri)`.
  predictions: the eval and score examples, each copied with float features btyd_expected_purchases,
    btyd_p_alive, btyd_expected_spend and btyd_clv over the next `horizon_days` (see `FittedBtyd.predict`),
    as GZIP TFRecords in Split-eval/ and Split-score/, so that an evaluation can read label and btyd_clv
    from the same examples.
  model_type: 'bgnbd', 'pnbd' or 'mbgnbd'. time_unit: 'days' or 'weeks' (fit and predict in that unit).
  Each split is read in memory (about 1 KB per customer): fine up to about a million customers.
  """
  splits = artifact_utils.decode_split_names(examples.split_names)
  _check_component_parameters(model_type, time_unit, penalizer_coef, horizon_days, annual_discount_rate,
                              fit_split, splits)
  fitted = fit_btyd(examples_summary(read_examples(examples, fit_split), time_unit), model_type, penalizer_coef,
                    time_unit)
  fitted.save(model.uri)
  horizon = horizon_days / TIME_UNITS[time_unit]
  predictions.split_names = artifact_utils.encode_split_names(PREDICT_SPLITS)
  for split in PREDICT_SPLITS:
    split_examples = read_examples(examples, split)
    predicted = fitted.predict(examples_summary(split_examples, time_unit), horizon, annual_discount_rate)
    write_examples([with_predictions(example, values) for example, values
                    in zip(split_examples, predicted.to_dict('records'))],
                   artifact_utils.get_split_uri([predictions], split))
    logging.info('BtydFit: %s split, %d customers, expected purchases %.1f, CLV %.1f in %g days',
                 split, len(predicted), predicted['expected_purchases'].sum(), predicted['clv'].sum(), horizon_days)
