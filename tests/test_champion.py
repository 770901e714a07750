"""The champion rule (pipelines.champion) and the blessing it writes, on real TFX artifacts."""
import math
import os

import pytest
from tfx.types import standard_artifacts

from pipelines import champion


def test_model_wins_only_when_strictly_better_than_every_baseline():
  won = champion.choose('mean_absolute_error', False, 'dnn', {'dnn': 9.0, 'btyd': 10.9, 'mean': 14.0})
  assert won.winner == 'dnn' and won.model_won
  tie = champion.choose('mean_absolute_error', False, 'dnn', {'dnn': 10.9, 'btyd': 10.9, 'mean': 14.0})
  assert tie.winner == 'btyd' and not tie.model_won
  lost = champion.choose('recall_at_10', True, 'two_tower', {'two_tower': 0.067, 'popularity': 0.069, 'random': 0.01})
  assert lost.winner == 'popularity'


def test_a_non_finite_or_missing_model_value_never_wins():
  assert champion.choose('auc', True, 'rnn', {'rnn': math.nan, 'logistic': 0.6}).winner == 'logistic'
  assert champion.choose('auc', True, 'rnn', {'rnn': 0.7, 'logistic': math.nan}).winner == 'rnn'
  with pytest.raises(ValueError, match='no auc for the model'):
    champion.choose('auc', True, 'rnn', {'logistic': 0.6})


def test_json_round_trip_keeps_every_value(tmp_path):
  chosen = champion.choose('mean_absolute_error', False, 'rnn', {'rnn': 239.0, 'naive': 234.0, 'ets': math.nan})
  champion.write(chosen, str(tmp_path))
  back = champion.read(str(tmp_path))
  assert back.winner == 'naive' and back.values['rnn'] == 239.0 and math.isnan(back.values['ets'])
  assert champion.read(str(tmp_path / 'absent')) is None


@pytest.mark.parametrize('evaluator_blessed,values,expected', [
    (True, {'dnn': 9.0, 'btyd': 10.0}, True),
    (True, {'dnn': 11.0, 'btyd': 10.0}, False),
    (False, {'dnn': 9.0, 'btyd': 10.0}, False),
])
def test_bless_writes_what_pusher_and_the_resolver_read(tmp_path, evaluator_blessed, values, expected):
  model = standard_artifacts.Model()
  model.uri, model.id = str(tmp_path / 'model'), 7
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / 'blessing')
  chosen = champion.choose('mean_absolute_error', False, 'dnn', values)
  assert champion.bless(blessing, model, chosen, evaluator_blessed) is expected
  assert blessing.get_int_custom_property('blessed') == int(expected)
  assert blessing.get_int_custom_property('current_model_id') == 7
  assert blessing.get_string_custom_property('current_model') == model.uri
  assert os.path.exists(os.path.join(blessing.uri, 'BLESSED' if expected else 'NOT_BLESSED'))
  assert champion.read(blessing.uri).winner == chosen.winner
