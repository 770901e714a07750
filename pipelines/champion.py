"""The champion rule, once for every use case: the model is served only if it beats every baseline on the
use case's primary metric (and the Evaluator's own thresholds); otherwise the best baseline's predictions are the
output, marked as such. The decision travels in the ModelBlessing artifact that Pusher, BulkInferrer and the
LatestBlessedModelStrategy read, with a champion.json beside it for the report and the exports."""
import dataclasses
import json
import math
import os
from typing import Any, Dict, Mapping, Optional

CHAMPION_JSON = 'champion.json'
# Custom properties of a ModelBlessing that TFX reads (tfx.components.evaluator.constants).
_BLESSED_KEY = 'blessed'
_CURRENT_MODEL_KEY = 'current_model'
_CURRENT_MODEL_ID_KEY = 'current_model_id'


@dataclasses.dataclass(frozen=True)
class Champion:
  """Which of the model and its baselines scored best on `metric`, with every candidate's value."""
  metric: str
  higher_is_better: bool
  model: str
  winner: str
  values: Dict[str, float]

  @property
  def model_won(self) -> bool:
    """True when the model itself is the champion."""
    return self.winner == self.model

  def to_dict(self) -> Dict[str, Any]:
    """JSON-ready form (NaN values become None)."""
    return {'metric': self.metric, 'higher_is_better': self.higher_is_better, 'model': self.model,
            'winner': self.winner, 'model_won': self.model_won,
            'values': {name: (None if not math.isfinite(v) else v) for name, v in self.values.items()}}

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> 'Champion':
    """Inverse of to_dict."""
    return cls(metric=data['metric'], higher_is_better=bool(data['higher_is_better']), model=data['model'],
               winner=data['winner'],
               values={name: (math.nan if v is None else float(v)) for name, v in data['values'].items()})


def choose(metric: str, higher_is_better: bool, model: str, values: Mapping[str, float]) -> Champion:
  """The champion among `values` (name -> metric value; `model` must be one of them): the model wins only if it
  is strictly better than every baseline; a missing or non-finite value never wins; among baselines the best
  finite one wins (ties: the first in `values`' order)."""
  if model not in values:
    raise ValueError(f'no {metric} for the model {model!r}; have {", ".join(values) or "nothing"}')
  finite = {name: float(v) for name, v in values.items() if v is not None and math.isfinite(float(v))}
  sign = 1.0 if higher_is_better else -1.0
  baselines = {name: v for name, v in finite.items() if name != model}
  best_baseline = max(baselines, key=lambda name: sign * baselines[name]) if baselines else None
  if model in finite and (best_baseline is None or sign * finite[model] > sign * baselines[best_baseline]):
    winner = model
  else:
    winner = best_baseline if best_baseline is not None else model
  return Champion(metric=metric, higher_is_better=higher_is_better, model=model, winner=winner,
                  values={name: float('nan') if v is None else float(v) for name, v in values.items()})


def write(champion: Champion, directory: str) -> str:
  """Writes champion.json into `directory` (local or gs://); returns its path."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(directory, CHAMPION_JSON)
  tf.io.gfile.makedirs(directory)
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(json.dumps(champion.to_dict(), indent=2, sort_keys=True))
  return path


def read(directory: str) -> Optional[Champion]:
  """The Champion written into `directory`, or None when there is none."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(directory, CHAMPION_JSON)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return Champion.from_dict(json.load(f))


def bless(blessing: Any, model: Any, champion: Champion, evaluator_blessed: bool) -> bool:
  """Marks the ModelBlessing artifact `blessing` for `model`: blessed only when the Evaluator blessed the model
  and the model is the champion. Writes BLESSED or NOT_BLESSED and champion.json into its uri, sets the custom
  properties Pusher, BulkInferrer and LatestBlessedModelStrategy read, and returns the verdict."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  blessed = bool(evaluator_blessed and champion.model_won)
  tf.io.gfile.makedirs(blessing.uri)
  with tf.io.gfile.GFile(os.path.join(blessing.uri, 'BLESSED' if blessed else 'NOT_BLESSED'), 'w') as f:
    f.write('')
  write(champion, blessing.uri)
  blessing.set_int_custom_property(_BLESSED_KEY, int(blessed))
  blessing.set_string_custom_property(_CURRENT_MODEL_KEY, model.uri)
  blessing.set_int_custom_property(_CURRENT_MODEL_ID_KEY, model.id)
  blessing.set_string_custom_property('champion', champion.winner)
  return blessed
