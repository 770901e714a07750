"""The train/score skew check: a score split made older on purpose is flagged, feature by feature."""
import datetime

import pandas as pd

from modules import clv
from pipelines.clv import skew

D = datetime.date


def _customers(as_of: datetime.date) -> pd.DataFrame:
  """40 customers, each buying every (k + 10) days from January 1997 up to 1997-09-30."""
  rows = []
  for k in range(40):
    purchases = [(D(1997, 1, 1) + datetime.timedelta(days=d), 1, 10.0 + k) for d in range(0, 272, k + 10)]
    rows.append(clv.customer_features(purchases, as_of))
  return pd.DataFrame(rows)


def test_same_age_is_not_flagged():
  train = _customers(D(1997, 9, 30))
  result = skew.score_skew(train, train, ['T', 'days_since_last', 'spend_last_90'])
  assert result['flagged'] == []
  assert result['features']['T']['outside_share'] == 0.0 and result['features']['T']['mean_shift'] == 0.0


def test_a_score_split_made_older_is_flagged_by_feature():
  train, older = _customers(D(1997, 9, 30)), _customers(D(1998, 9, 30))  # a year later, no new purchase
  result = skew.score_skew(train, older, ['T', 'recency', 'days_since_last', 'spend_last_30', 'mean_spend'])
  assert result['flagged'] == ['T', 'days_since_last', 'spend_last_30']
  t = result['features']['T']
  assert t['outside_share'] == 1.0 and t['train_max'] == 272 and t['score_mean'] == 272 + 365
  assert result['features']['spend_last_30']['score_mean'] == 0.0  # below the training mean, inside its range
  assert not result['features']['recency']['flagged'] and not result['features']['mean_spend']['flagged']
  assert 'T | 272..272' in skew.markdown(result)
