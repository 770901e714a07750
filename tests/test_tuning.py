"""pipelines.tuning: a seeded search over a real tf_keras model, and the values run_fn receives."""
import types

import keras_tuner
import numpy as np
import tf_keras

from pipelines import tuning


def _data(seed: int = 0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(400, 3)).astype('float32')
  y = (x @ np.array([1.5, -2.0, 0.5], 'float32') + 0.1 * rng.normal(size=400)).astype('float32')
  return x[:300], y[:300], x[300:], y[300:]


def _build_and_score(hp: keras_tuner.HyperParameters) -> float:
  """Fits a small tf_keras regression with the trial's values; eval MAE."""
  x, y, x_eval, y_eval = _data()
  tf_keras.utils.set_random_seed(1)
  model = tf_keras.Sequential([tf_keras.layers.Dense(hp.get('units'), activation='relu'), tf_keras.layers.Dense(1)])
  # Eager: tracing fit and predict for each of the nine models would cost ten times the training.
  model.compile(tf_keras.optimizers.Adam(hp.get('learning_rate')), loss='mse', run_eagerly=True)
  model.fit(x, y, epochs=3, batch_size=64, verbose=0)
  return float(np.mean(np.abs(model(x_eval, training=False).numpy()[:, 0] - y_eval)))


def _space() -> keras_tuner.HyperParameters:
  hp = keras_tuner.HyperParameters()
  hp.Choice('units', [4, 16, 32])
  hp.Choice('learning_rate', [0.0003, 0.003, 0.03])
  return hp


def _search(tmp_path, name: str, seed: int, settings=None):
  tuner = tuning.make_tuner(_build_and_score, _space(), 'eval_mae', 'min', max_trials=4, seed=seed,
                            directory=str(tmp_path / name), settings=settings)
  tuner.search()
  return tuner


def test_a_seeded_search_of_a_tf_keras_model_repeats_and_keeps_the_best(tmp_path):
  first, second = _search(tmp_path, 'a', 5), _search(tmp_path, 'b', 5)
  trials = first.oracle.get_best_trials(4)
  assert len(trials) == 4 and all(t.score is not None and np.isfinite(t.score) for t in trials)
  assert first.get_best_hyperparameters()[0].values == second.get_best_hyperparameters()[0].values
  assert [t.hyperparameters.values for t in trials] == [t.hyperparameters.values for t in second.oracle.get_best_trials(4)]
  best = first.get_best_hyperparameters()[0].values
  assert _build_and_score(first.get_best_hyperparameters()[0]) == min(t.score for t in trials)
  assert best['learning_rate'] in (0.0003, 0.003, 0.03)


def test_tuned_values_override_settings_and_keep_their_types():
  best = _space()
  best.values.update({'units': 16, 'learning_rate': 0.03})
  fn_args = types.SimpleNamespace(hyperparameters=best.get_config())
  values = tuning.tuned_values(fn_args, {'units': 64, 'learning_rate': 0.002, 'epochs': 30})
  assert values == {'units': 16, 'learning_rate': 0.03, 'epochs': 30}
  assert tuning.tuned_values(types.SimpleNamespace(hyperparameters=None), {'epochs': 30}) == {'epochs': 30}


def test_the_first_trial_is_the_untuned_settings_so_tuning_never_loses_to_them(tmp_path):
  settings = {'units': 4, 'learning_rate': 0.0003, 'epochs': 30}
  tuner = _search(tmp_path, 'c', 5, settings)
  trials = sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))
  assert trials[0].hyperparameters.values == {'units': 4, 'learning_rate': 0.0003}
  assert min(t.score for t in trials) <= trials[0].score
  assert tuning.first_values(_space(), {'units': 5}) == {'units': 4, 'learning_rate': 0.0003}  # 5: not a choice
