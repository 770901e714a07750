"""Hyperparameter search for TFX's Tuner component with tf_keras models.

keras-tuner 1.4.8's own Tuner classes refuse tf_keras models (keras-tuner#1039), so a use case gives a function
that builds and fits its tf_keras model for one trial's values and returns the objective on the eval split;
`FunctionTuner`, a `keras_tuner.engine.base_tuner.BaseTuner`, runs it under a seeded RandomSearch oracle (same data and seed, same
trials and best values). A use case's `tuner_fn` returns `tfx.components.TunerFnResult(tuner=make_tuner(...),
fit_kwargs={})`; its `run_fn` reads the best values with `tuned_values`.
"""
import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional

import keras_tuner
from keras_tuner.engine import base_tuner

TUNER_RESULTS_FILE = 'tuner_results.json'  # written by TFX's Tuner executor into its `tuner_results` output
BEST_HYPERPARAMETERS_FILE = 'best_hyperparameters.txt'


class FunctionTuner(base_tuner.BaseTuner):
  """Runs `build_and_score(hp) -> float` for each trial; no model is kept (the Trainer trains the final one)."""

  def __init__(self, build_and_score: Callable[[keras_tuner.HyperParameters], float], oracle: keras_tuner.Oracle,
               directory: str, project_name: str):
    super().__init__(oracle=oracle, directory=directory, project_name=project_name, overwrite=True)
    self._build_and_score = build_and_score

  def run_trial(self, trial, *fit_args, **fit_kwargs) -> float:  # pylint: disable=unused-argument
    return float(self._build_and_score(trial.hyperparameters))

  def save_model(self, trial_id, model, step=0) -> None:  # nothing to save: see the class docstring
    del trial_id, model, step


class _UntunedFirstOracle(keras_tuner.oracles.RandomSearchOracle):
  """Random search whose first trial holds the run's own settings, so the best trial is never worse than not
  tuning at all (on the tuning objective); the other trials are seeded random draws."""

  def __init__(self, first: Mapping[str, Any], **kwargs):
    super().__init__(**kwargs)
    self._first = dict(first)

  def populate_space(self, trial_id):
    if self._first:
      first, self._first = self._first, {}
      return {'status': keras_tuner.engine.trial.TrialStatus.RUNNING, 'values': first}
    return super().populate_space(trial_id)


def first_values(hyperparameters: keras_tuner.HyperParameters, settings: Mapping[str, Any]) -> Dict[str, Any]:
  """Each hyperparameter's value in `settings` where the space allows it, else its declared default."""
  values = {}
  for hp in hyperparameters.space:
    value = settings.get(hp.name, hp.default)
    allowed = getattr(hp, 'values', None)
    values[hp.name] = value if allowed is None or value in allowed else hp.default
  return values


def make_tuner(build_and_score: Callable[[keras_tuner.HyperParameters], float],
               hyperparameters: keras_tuner.HyperParameters, objective: str, direction: str, max_trials: int,
               seed: int, directory: str, settings: Optional[Mapping[str, Any]] = None) -> base_tuner.BaseTuner:
  """A seeded random search over `hyperparameters` (their declared space) of at most `max_trials` trials, each
  scored by `build_and_score`; `direction` is 'min' or 'max' for `objective` (a name for the report). The first
  trial takes its values from `settings` (the run's untuned values; first_values), the rest are random."""
  if direction not in ('min', 'max'):
    raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
  if max_trials < 1:
    raise ValueError(f'tuning_trials must be at least 1, got {max_trials}')
  oracle = _UntunedFirstOracle(
      first_values(hyperparameters, settings or {}),
      objective=keras_tuner.Objective(objective, direction=direction), max_trials=max_trials, seed=seed,
      hyperparameters=hyperparameters, tune_new_entries=False, allow_new_entries=False)
  return FunctionTuner(build_and_score, oracle, directory=directory, project_name='search')


def tuned_values(fn_args: Any, defaults: Mapping[str, Any]) -> Dict[str, Any]:
  """`defaults` (the run's settings) with the Tuner's best values over them, where the Trainer was given the
  Tuner's `best_hyperparameters` (fn_args.hyperparameters: a HyperParameters config); each value keeps the type
  of its default."""
  values = dict(defaults)
  config = getattr(fn_args, 'hyperparameters', None)
  if config:
    best = keras_tuner.HyperParameters.from_config(config).values
    for name, value in best.items():
      if name in values and values[name] is not None:
        values[name] = type(values[name])(value)
      else:
        values[name] = value
  return values


def read_results(tuner_results_uri: str, best_hyperparameters_uri: Optional[str] = None) -> Dict[str, Any]:
  """summary.json's `tuning`: every completed trial (values and objective score, best first) and the chosen
  values, from the Tuner's output artifacts."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  trials: List[Dict[str, Any]] = []
  path = os.path.join(tuner_results_uri, TUNER_RESULTS_FILE)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      trials = json.load(f)
  best: Dict[str, Any] = {}
  if best_hyperparameters_uri:
    best_path = os.path.join(best_hyperparameters_uri, BEST_HYPERPARAMETERS_FILE)
    if tf.io.gfile.exists(best_path):
      with tf.io.gfile.GFile(best_path) as f:
        best = keras_tuner.HyperParameters.from_config(json.load(f)).values
  return {'trials': trials, 'best': best}
