"""CLV feature aggregation against values computed by hand, and build_examples through a real Beam pipeline."""
import datetime

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from modules import clv

D = datetime.date
THRESHOLD = D(1997, 9, 30)
PREDICT_END = D(1998, 6, 30)


def test_single_purchase():
  features = clv.customer_features([(D(1997, 3, 1), 2, 30.0)], THRESHOLD)
  assert features == {
      'frequency': 0, 'recency': 0, 'T': 213, 'total_spend': 30.0, 'mean_spend': 30.0, 'monetary_value': 0.0,
      'mean_quantity': 2.0, 'mean_days_between_purchases': 0.0, 'purchases_last_30': 0, 'purchases_last_90': 0,
      'purchases_last_180': 0, 'purchases_last_365': 1, 'spend_last_30': 0.0, 'spend_last_90': 0.0,
      'spend_last_180': 0.0, 'spend_last_365': 30.0, 'days_since_last': 213,
      'purchase_rate': 365 / 213, 'spend_rate': 30.0 * 365 / 213,
      'first_purchase_month': 3, 'frequency_bucket': '0'}


def test_one_customer_at_two_ages_by_hand():
  """Windows and rates say the same about the same behaviour: only what changed in the window changes."""
  purchases = [(D(1997, 1, 10), 1, 10.0), (D(1997, 8, 1), 1, 20.0), (D(1997, 9, 20), 1, 30.0),
               (D(1998, 5, 1), 1, 50.0), (D(1998, 6, 10), 1, 40.0)]
  young, old = clv.customer_features(purchases, THRESHOLD), clv.customer_features(purchases, PREDICT_END)
  # as of 1997-09-30: Sep 20 is 10 days back, Aug 1 60, Jan 10 263
  assert (young['purchases_last_30'], young['purchases_last_90'], young['purchases_last_180'],
          young['purchases_last_365']) == (1, 2, 2, 3)
  assert (young['spend_last_30'], young['spend_last_90'], young['spend_last_365']) == (30.0, 50.0, 60.0)
  assert young['days_since_last'] == 10
  assert young['purchase_rate'] == 3 * 365 / 263 and young['spend_rate'] == 60.0 * 365 / 263
  # as of 1998-06-30 (536 days old): Jun 10 is 20 days back, May 1 60, Sep 20 283, Aug 1 333, Jan 10 536
  assert (old['purchases_last_30'], old['purchases_last_90'], old['purchases_last_180'],
          old['purchases_last_365']) == (1, 2, 2, 4)
  assert (old['spend_last_30'], old['spend_last_90'], old['spend_last_365']) == (40.0, 90.0, 140.0)
  assert old['days_since_last'] == 20 and old['T'] == 536
  assert old['purchase_rate'] == 5 * 365 / 536 and old['spend_rate'] == 150.0 * 365 / 536


def test_rates_floor_the_age_of_a_new_customer():
  features = clv.customer_features([(D(1997, 9, 25), 1, 12.0)], THRESHOLD)
  assert features['purchase_rate'] == 365 / clv.MIN_RATE_DAYS and features['spend_rate'] == 12.0 * 365 / 30


@pytest.mark.parametrize('frequency, bucket', [(0, '0'), (1, '1'), (2, '2-3'), (3, '2-3'), (4, '4-7'),
                                               (7, '4-7'), (8, '8+'), (40, '8+')])
def test_frequency_bucket(frequency, bucket):
  assert clv.frequency_bucket(frequency) == bucket


def test_same_day_purchases_are_merged():
  purchases = [(D(1997, 1, 10), 1, 10.0), (D(1997, 1, 10), 3, 20.0), (D(1997, 2, 9), 2, 15.0)]
  features = clv.customer_features(purchases, THRESHOLD)
  assert features['frequency'] == 1          # two purchase days
  assert features['recency'] == 30           # Jan 10 -> Feb 9
  assert features['T'] == 263                # Jan 10 -> Sep 30
  assert features['total_spend'] == 45.0
  assert features['mean_spend'] == 22.5      # (30 + 15) / 2 days
  assert features['monetary_value'] == 15.0  # repeat day only
  assert features['mean_quantity'] == 3.0    # (4 + 2) / 2 days
  assert features['mean_days_between_purchases'] == 30.0


def test_purchase_on_threshold_date_is_calibration_not_label():
  purchases = [(D(1997, 7, 1), 1, 10.0), (THRESHOLD, 1, 25.0), (D(1997, 10, 1), 1, 7.0)]
  features = clv.customer_features(purchases, THRESHOLD)
  assert features['frequency'] == 1
  assert features['recency'] == 91
  assert features['T'] == 91
  assert features['total_spend'] == 35.0
  assert features['purchases_last_30'] == 1   # only Sep 30 (0 days before)
  assert features['purchases_last_90'] == 1   # Jul 1 is 91 days before
  assert clv.spend_between(purchases, THRESHOLD, PREDICT_END) == 7.0


def test_no_purchase_in_holdout_gives_zero_label():
  purchases = [(D(1997, 1, 5), 1, 12.0), (D(1997, 8, 20), 1, 8.0)]
  assert clv.spend_between(purchases, THRESHOLD, PREDICT_END) == 0.0
  assert clv.customer_features(purchases, THRESHOLD)['purchases_last_90'] == 1


def test_no_purchase_before_as_of_gives_none():
  assert clv.customer_features([(D(1997, 12, 1), 1, 5.0)], THRESHOLD) is None


@pytest.mark.parametrize('value, expected', [
    ('1997-01-02', D(1997, 1, 2)), ('19970102', D(1997, 1, 2)), (19970102, D(1997, 1, 2)),
    ('1997-01-02T10:00:00Z', D(1997, 1, 2))])
def test_parse_date_formats(value, expected):
  assert clv.parse_date(value) == expected


@pytest.mark.parametrize('row, reason', [
    ({'customer_id': None, 'date': '1997-01-01', 'quantity': 1, 'amount': 1.0}, 'missing_customer_id'),
    ({'customer_id': '7', 'date': '1997-13-01', 'quantity': 1, 'amount': 1.0}, 'unparsable_date'),
    ({'customer_id': '7', 'date': '1997-01-01', 'quantity': 1, 'amount': 'abc'}, 'unparsable_number'),
    ({'customer_id': '7', 'date': '1997-01-01', 'quantity': 1, 'amount': -3.0}, 'negative_quantity_or_amount'),
])
def test_bad_rows_get_a_reason(row, reason):
  assert clv.parse_transaction(row) == (None, reason)


def test_split_is_stable_and_seeded():
  ids = [str(i) for i in range(2000)]
  first = [clv.assign_split(i, 20, seed=1) for i in ids]
  assert first == [clv.assign_split(i, 20, seed=1) for i in ids]
  assert 0.17 < first.count('eval') / len(ids) < 0.23
  assert first != [clv.assign_split(i, 20, seed=2) for i in ids]


def test_build_examples_in_beam():
  rows = [
      {'customer_id': 1, 'date': '1997-01-10', 'quantity': 1, 'amount': 10.0},
      {'customer_id': 1, 'date': '1997-01-10', 'quantity': 3, 'amount': 20.0},
      {'customer_id': 1, 'date': '1997-11-01', 'quantity': 1, 'amount': 5.0},
      {'customer_id': 2, 'date': '1997-02-01', 'quantity': 1, 'amount': 9000.0},   # above max_monetary
      {'customer_id': 3, 'date': '1998-01-01', 'quantity': 1, 'amount': 4.0},      # first purchase after threshold
      {'customer_id': 4, 'date': 'yesterday', 'quantity': 1, 'amount': 4.0},      # bad date
      {'customer_id': 5, 'date': '1998-08-01', 'quantity': 1, 'amount': 4.0},      # after predict_end
  ]
  params = {'threshold_date': '1997-09-30', 'predict_end': '1998-06-30', 'max_monetary': 4000.0,
            'eval_percent': 0, 'seed': 0}
  with beam.Pipeline() as pipeline:
    built = clv.build_examples(pipeline | beam.Create(rows), params)
    assert_that(built.splits['train'] | 'TrainIds' >> beam.Map(lambda r: (r['customer_id'], r['label'],
                                                                          r['total_spend'])),
                equal_to([('1', 5.0, 30.0)]), label='train')
    assert_that(built.splits['eval'], equal_to([]), label='eval')
    assert_that(built.splits['score'] | 'ScoreIds' >> beam.Map(lambda r: (r['customer_id'], 'label' in r)),
                equal_to([('1', False), ('2', False), ('3', False)]), label='score')
    assert_that(built.rejected | beam.Map(lambda r: r['reason']),
                equal_to(['calibration_spend_above_max_monetary', 'no_purchase_before_threshold',
                          'unparsable_date', 'after_predict_end']), label='rejected')
