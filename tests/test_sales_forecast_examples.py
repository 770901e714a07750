"""Sales forecast: row rejection by reason, item-month sequences and labels by hand, splits, baselines, SQL."""
import datetime
import os
import random

import apache_beam as beam
import pytest
from apache_beam.testing import util as beam_util

from modules import sales_forecast as sf
from pipelines import bigquery
from pipelines.components.examples_builder import check_rejected_fraction
from pipelines.sales_forecast.pipeline import bigquery_query, line_to_row

HEADER = sf.COLUMNS
GOOD = '2023-01-02,2633,11788,Black Velvet Whiskies 750ml,Canadian Whiskies,Sazerac Company Inc,12,750,5.23,7.85,12'
# (line, reason) for each rejection reason; bottles/pack/date fields broken one at a time.
BAD = [
    ('2023-01-02,2633,11788,Black Velvet,Canadian Whiskies,Sazerac,12,750,5.23,7.85', 'wrong_field_count'),
    ('2023-01-02,2633,11788,Black Velvet,Canadian Whiskies,Sazerac,12,750,5.23,7.85,12,extra', 'wrong_field_count'),
    ('', 'wrong_field_count'),
    ('2023-01-02,2633,11788,Black\x00Velvet,Canadian Whiskies,Sazerac,12,750,5.23,7.85,12', 'wrong_field_count'),
    ('2023-01-02,2633,,Black Velvet,Canadian Whiskies,Sazerac,12,750,5.23,7.85,12', 'empty_required_field'),
    ('2023-01-02,2633,11788,Black Velvet,Canadian Whiskies,Sazerac,12,750,5.23,7.85,', 'empty_required_field'),
    ('2023-13-45,2633,11788,Black Velvet,Canadian Whiskies,Sazerac,12,750,5.23,7.85,12', 'unparsable_date'),
    ('yesterday,2633,11788,Black Velvet,Canadian Whiskies,Sazerac,12,750,5.23,7.85,12', 'unparsable_date'),
    ('2023-01-02,2633,11788,Black Velvet,Canadian Whiskies,Sazerac,12,750,5.23,7.85,twelve', 'unparsable_number'),
    ('2023-01-02,2633,11788,Black Velvet,Canadian Whiskies,Sazerac,12,750,N/A,7.85,12', 'unparsable_number'),
    ('2023-01-02,2633,11788,Black Velvet,Canadian Whiskies,Sazerac,12,750,5.23,7.85,-3', 'negative_bottles_sold'),
    ('2023-01-02,2633,11788,Black Velvet,Canadian Whiskies,Sazerac,0,750,5.23,7.85,12', 'non_positive_pack'),
    ('2023-01-02,2633,11788,Black Velvet,Canadian Whiskies,Sazerac,-6,750,5.23,7.85,12', 'non_positive_pack'),
]


def _sale(day, bottles, item='1'):
  return sf.Sale(item, day, float(bottles), ('desc', 'cat', 'vendor', 12.0, 750.0, 5.0, 7.5))


def test_each_rejection_reason_on_handcrafted_lines():
  for line, reason in BAD:
    assert sf.parse_sale(line_to_row(line, HEADER)) == (None, reason), line
  sale, reason = sf.parse_sale(line_to_row(GOOD, HEADER))
  assert reason is None
  assert sale.item_number == '11788' and sale.day == datetime.date(2023, 1, 2) and sale.bottles == 12.0


def test_columns_in_any_order_with_extra_columns_and_other_formats():
  header = ['invoice', 'bottles_sold'] + [c for c in HEADER if c != 'bottles_sold']
  row = line_to_row('INV-1,$4,01/31/2023,,77,"Item, with comma",,V,6,1000,"$1,001.50",12', header)
  sale, reason = sf.parse_sale(row)
  assert reason is None and 'invoice' not in row
  assert sale.day == datetime.date(2023, 1, 31) and sale.bottles == 4.0
  assert sale.attributes == ('Item, with comma', sf.UNKNOWN, 'V', 6.0, 1000.0, 1001.5, 12.0)
  # BigQuery rows: numbers as strings, dates as YYYY-MM-DD; CSV-inferred ints and floats work too.
  assert sf.parse_sale({**row, 'date': '2023-01-31', 'bottles_sold': 4, 'pack': 6})[1] is None


def test_build_examples_counts_every_reason_exactly():
  lines = [GOOD, GOOD.replace('2023-01-02', '2023-02-03')] + [line for line, _ in BAD]
  expected = {}
  for _, reason in BAD:
    expected[reason] = expected.get(reason, 0) + 1
  with beam.Pipeline() as pipeline:
    built = sf.build_examples(pipeline | beam.Create([line_to_row(l, HEADER) for l in lines]), {'eval_months': 1})
    reasons = built.rejected | beam.Map(lambda r: r['reason']) | beam.combiners.Count.PerElement()
    beam_util.assert_that(reasons, beam_util.equal_to(sorted(expected.items())), label='reasons')
    # January -> eval (label: February's 12), February -> score.
    beam_util.assert_that(built.splits['eval'] | beam.Map(lambda e: (e[sf.MONTH], e[sf.LABEL])),
                          beam_util.equal_to([(202301, 12.0)]), label='eval')
    beam_util.assert_that(built.splits['score'] | beam.Map(lambda e: e[sf.FORECAST_MONTH]),
                          beam_util.equal_to([202303]), label='score')
    beam_util.assert_that(built.splits['train'], beam_util.is_empty(), label='train')


def test_sequence_of_a_month_with_gaps_and_of_february():
  daily = {datetime.date(2023, 2, 1): 3.0, datetime.date(2023, 2, 28): 5.0, datetime.date(2023, 3, 1): 9.0}
  feb = sf.month_sequence(daily, sf.month_index(datetime.date(2023, 2, 1)))
  assert feb['daily_bottles'] == [3.0] + [0.0] * 26 + [5.0, 0.0, 0.0, 0.0]
  assert feb['sale_day'] == [1] + [0] * 26 + [1, 0, 0, 0]
  assert feb['day_in_month'] == [1] * 28 + [0] * 3
  # 2023-02-01 was a Wednesday (2); positions after the 28th are outside the month (7).
  assert feb['day_of_week'][:7] == [2, 3, 4, 5, 6, 0, 1] and feb['day_of_week'][28:] == [7, 7, 7]
  march = sf.month_sequence(daily, sf.month_index(datetime.date(2023, 3, 1)))
  assert march['day_in_month'] == [1] * 31 and march['daily_bottles'][0] == 9.0 and sum(march['sale_day']) == 1


def test_examples_of_one_item_by_hand_labels_over_month_and_year_end():
  sales = [_sale(datetime.date(2022, 10, 3), 4), _sale(datetime.date(2022, 10, 31), 2),
           _sale(datetime.date(2022, 12, 1), 10), _sale(datetime.date(2022, 12, 31), 6),
           _sale(datetime.date(2023, 1, 2), 7), _sale(datetime.date(2023, 2, 1), 1)]
  last_month = sf.month_index(datetime.date(2023, 2, 1))
  examples = list(sf.item_examples('1', sales, last_month, eval_months=2))
  assert [(split, e[sf.MONTH], e.get(sf.LABEL)) for split, e in examples] == [
      ('train', 202210, 0.0),     # November: no sales (a gap month, still an example)
      ('train', 202211, 16.0),    # December, the 31st included
      ('eval', 202212, 7.0),      # over the year end: January 2023
      ('eval', 202301, 1.0),
      ('score', 202302, None)]    # the latest month: no label yet
  december = examples[2][1]
  assert december[sf.FORECAST_MONTH] == 202301 and december['forecast_month_of_year'] == 1
  assert december['month_total'] == 16.0 and december['daily_bottles'][30] == 6.0
  assert (december['prev_month_1_total'], december['prev_month_2_total'], december['prev_month_3_total']) == (
      0.0, 6.0, 0.0)
  assert december['has_last_year'] == 0 and december['history_months'] == 2
  assert december['naive_forecast'] == 16.0
  assert december['seasonal_naive_forecast'] == 16.0           # no January a year before: naive
  assert december['moving_average_forecast'] == pytest.approx((16 + 0 + 6) / 3)
  assert examples[0][1]['moving_average_forecast'] == 6.0       # only the months since the first sale


def test_seasonal_naive_uses_the_target_month_a_year_before():
  sales = [_sale(datetime.date(2021, 12, 6), 30), _sale(datetime.date(2021, 11, 1), 5),
           _sale(datetime.date(2022, 11, 7), 8), _sale(datetime.date(2022, 12, 5), 40)]
  examples = dict((e[sf.MONTH], e) for _, e in sf.item_examples('1', sales, sf.month_index(
      datetime.date(2022, 12, 1)), eval_months=1))
  november = examples[202211]
  assert november['has_last_year'] == 1 and november['last_year_total'] == 30.0
  assert november['seasonal_naive_forecast'] == 30.0 and november[sf.LABEL] == 40.0


def test_discontinued_item_gets_one_zero_month_then_stops():
  sales = [_sale(datetime.date(2022, 1, 3), 4), _sale(datetime.date(2022, 2, 7), 4)]
  examples = list(sf.item_examples('1', sales, sf.month_index(datetime.date(2022, 8, 1)), eval_months=3))
  assert [(s, e[sf.MONTH], e[sf.LABEL]) for s, e in examples] == [
      ('train', 202201, 4.0), ('train', 202202, 0.0), ('train', 202203, 0.0)]


def test_split_boundaries():
  sales = [_sale(datetime.date(2022, m, 1), m) for m in range(1, 13)]
  splits = [(s, e[sf.MONTH]) for s, e in sf.item_examples('1', sales, sf.month_index(datetime.date(2022, 12, 1)), 3)]
  assert [m for s, m in splits if s == 'train'] == [202200 + m for m in range(1, 9)]
  assert [m for s, m in splits if s == 'eval'] == [202209, 202210, 202211]
  assert [m for s, m in splits if s == 'score'] == [202212]


def test_max_rejected_fraction():
  counts = {'rows_in': 100, 'skipped/unparsable_date': 3, 'skipped/wrong_field_count': 3, 'examples/train': 5}
  check_rejected_fraction(counts, None)
  check_rejected_fraction(counts, 0.06)
  with pytest.raises(ValueError, match=r'6 of 100 rows rejected \(6.00%\).*unparsable_date 3, wrong_field_count 3'):
    check_rejected_fraction(counts, 0.05)


def test_bigquery_query_aggregates_per_item_and_day_with_checked_identifiers():
  table = bigquery.BigQueryTable.parse('bq://bigquery-public-data.iowa_liquor_sales.sales')
  sql = bigquery_query(table, {'bottles_sold': 'bottles'})
  assert 'CAST(SUM(`bottles`) AS STRING) AS `bottles_sold`' in sql
  assert 'CAST(`date` AS STRING) AS `date`' in sql and 'CAST(MAX(`pack`) AS STRING) AS `pack`' in sql
  assert sql.endswith('FROM `bigquery-public-data.iowa_liquor_sales.sales`\nGROUP BY 1, 2')
  with pytest.raises(bigquery.InvalidIdentifier):
    bigquery_query(table, {'bottles_sold': 'x; DROP TABLE y'})
  with pytest.raises(bigquery.InvalidIdentifier):
    bigquery_query(table, {'no_such_column': 'x'})


def test_days_merged_in_any_order_give_the_same_examples():
  """Batches reach the group-by in any order: fractional bottles (whose float sum depends on the order) and
  same-day sales with other attributes give the same examples however the sales are split and merged."""
  rng = random.Random(5)
  sales = [sf.Sale('1', datetime.date(2022, 1, 1) + datetime.timedelta(days=rng.randrange(120)),
                   rng.choice([0.1, 0.2, 0.3, 1.7, 12.0]), (rng.choice(['a', 'b']), 'cat', 'vendor', 12.0, 750.0, 5.0,
                                                            rng.choice([7.5, 8.0])))
           for _ in range(400)]
  last = sf.month_index(datetime.date(2022, 5, 1))
  expected = list(sf.item_examples('1', sales, last, eval_months=1))
  for _ in range(3):
    rng.shuffle(sales)
    cuts = sorted(rng.sample(range(1, len(sales)), 6))
    batches = []
    for start, end in zip([0] + cuts, cuts + [len(sales)]):
      days = {}
      for sale in sales[start:end]:
        sf.add_sale(days, sale)
      batches.append(days)
    merged = {}
    for days in reversed(batches):
      sf.merge_days(merged, days)
    assert list(sf.days_examples('1', merged, last, eval_months=1)) == expected


def test_build_examples_in_batches_equals_row_by_row_on_the_bundled_sample():
  """Beam's batched parse and per-item merge give exactly the examples and rejects of parsing each row and
  building each item's examples from all its sales at once."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'sales_forecast',
                      'sales_sample.csv')
  with open(path, newline='') as f:
    lines = f.read().splitlines()
  rows = [line_to_row(line, lines[0].split(',')) for line in lines[1:]]
  by_item, rejected = {}, []
  for row in rows:
    sale, reason = sf.parse_sale(row)
    if reason:
      rejected.append(reason)
    else:
      by_item.setdefault(sale.item_number, []).append(sale)
  last = max(sf.month_index(s.day) for sales in by_item.values() for s in sales)
  expected = {'train': [], 'eval': [], 'score': []}
  for item, sales in by_item.items():
    for split, example in sf.item_examples(item, sales, last, 3):
      expected[split].append(repr(sorted(example.items())))
  assert rejected and all(len(v) > 10 for v in expected.values())
  with beam.Pipeline() as pipeline:
    built = sf.build_examples(pipeline | beam.Create(rows), {'eval_months': 3})
    for split, examples in expected.items():
      beam_util.assert_that(built.splits[split] | f'Repr[{split}]' >> beam.Map(lambda e: repr(sorted(e.items()))),
                            beam_util.equal_to(examples), label=split)
    beam_util.assert_that(built.rejected | beam.Map(lambda r: r['reason']), beam_util.equal_to(rejected),
                          label='rejected')
