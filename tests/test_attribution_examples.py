"""modules.attribution.build_examples: impressions -> journeys, worked by hand, and under Beam."""
import csv
import os

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from modules import attribution as module


def _journeys(touches, max_length=10, uid='u1'):
  return list(module.journeys(uid, touches, max_length))


def test_one_user_with_two_conversions_and_trailing_impressions():
  # Given out of order: the journeys follow time, not input order.
  touches = [(300, 'b', 1), (100, 'a', 0), (200, 'c', 0), (700, 'a', 0), (400, 'c', 1), (500, 'b', 0)]
  built = _journeys(touches, max_length=4)
  examples = [example for example, _ in built]
  assert [dropped for _, dropped in built] == [[], [], []]
  assert [e[module.KEY] for e in examples] == ['u1/0', 'u1/1', 'u1/2']
  assert [e['conversion_id'] for e in examples] == [0, 1, 2]
  assert [e[module.LABEL] for e in examples] == [1, 1, 0]
  first, second, trailing = examples
  assert first[module.CAMPAIGNS] == ['a', 'c', 'b', '']
  assert first[module.MASK] == [1, 1, 1, 0]
  assert first[module.POSITION] == [0, 1, 2, -1]
  assert first[module.HOURS] == pytest.approx([200 / 3600, 100 / 3600, 0.0, 0.0])
  assert first['journey_length'] == first['touches'] == 3 and first['end_timestamp'] == 300
  # Time at risk: the first journey from its first touch, the next ones from the previous conversion.
  assert [e[module.SPAN] for e in examples] == pytest.approx([200 / 3600, 100 / 3600, 300 / 3600])
  # The user's past before each journey: earlier journeys, hours from the first touch to the journey's start.
  assert [e[module.EARLIER_JOURNEYS] for e in examples] == [0, 1, 2]
  assert [e[module.EARLIER_HOURS] for e in examples] == pytest.approx([0.0, 200 / 3600, 300 / 3600])
  assert second[module.CAMPAIGNS] == ['c', '', '', ''] and second[module.MASK] == [1, 0, 0, 0]
  assert trailing[module.CAMPAIGNS] == ['b', 'a', '', ''] and trailing[module.LABEL] == 0
  assert trailing[module.HOURS][:2] == pytest.approx([200 / 3600, 0.0])


def test_truncation_keeps_the_last_touches_and_returns_the_dropped_ones():
  touches = [(t, f'c{t}', 0) for t in range(1, 6)] + [(6, 'last', 1)]
  [(example, dropped)] = _journeys(touches, max_length=3)
  assert example[module.CAMPAIGNS] == ['c4', 'c5', 'last']
  assert example[module.MASK] == [1, 1, 1]
  assert example[module.POSITION] == [3, 4, 5]
  assert example['journey_length'] == 3 and example['touches'] == 6
  assert dropped == [(1, 'c1', 0), (2, 'c2', 0), (3, 'c3', 0)]


def test_a_conversion_at_the_same_second_as_another_touch_closes_the_journey_after_it():
  [(example, _)] = _journeys([(5, 'z', 1), (5, 'a', 0)])
  assert example[module.CAMPAIGNS][:2] == ['a', 'z'] and example[module.LABEL] == 1


@pytest.mark.parametrize('row, reason', [
    ({'uid': '', 'timestamp': 1, 'campaign': 'a', 'conversion': 0}, 'missing_uid'),
    ({'uid': 'u', 'timestamp': 1, 'campaign': None, 'conversion': 0}, 'missing_campaign'),
    ({'uid': 'u', 'timestamp': 'yesterday', 'campaign': 'a', 'conversion': 0}, 'unparsable_timestamp'),
    ({'uid': 'u', 'timestamp': '1.5', 'campaign': 'a', 'conversion': 0}, 'unparsable_timestamp'),
    ({'uid': 'u', 'timestamp': 1, 'campaign': 'a', 'conversion': 2}, 'unparsable_conversion'),
])
def test_bad_rows_have_a_reason(row, reason):
  assert module.parse_impression(row) == (None, reason)


def test_strings_from_bigquery_parse_like_csv_numbers():
  assert module.parse_impression({'uid': 7, 'timestamp': 1704067200, 'campaign': 'Spring Sale', 'conversion': 1}) == (
      ('7', (1704067200, 'Spring Sale', 1)), None)
  assert module.parse_impression({'uid': ' 7 ', 'timestamp': '1704067200', 'campaign': 'x', 'conversion': 'true'}) == (
      ('7', (1704067200, 'x', 1)), None)


def test_split_is_a_stable_hash_of_the_journey_id():
  splits = [module.assign_split(f'u{i}/0') for i in range(5000)]
  assert splits == [module.assign_split(f'u{i}/0') for i in range(5000)]
  shares = {name: splits.count(name) / len(splits) for name in ('train', 'eval', 'test')}
  assert shares['train'] == pytest.approx(0.8, abs=0.03)
  assert shares['eval'] == pytest.approx(0.1, abs=0.02) and shares['test'] == pytest.approx(0.1, abs=0.02)


def test_build_examples_under_beam_counts_every_row():
  rows = [{'uid': 'u1', 'timestamp': t, 'campaign': c, 'conversion': v}
          for t, c, v in [(1, 'a', 0), (2, 'b', 0), (3, 'c', 1), (4, 'a', 0)]]
  rows += [{'uid': '', 'timestamp': 1, 'campaign': 'a', 'conversion': 0},
           {'uid': 'u2', 'timestamp': 'x', 'campaign': 'a', 'conversion': 0}]
  with beam.Pipeline() as pipeline:
    built = module.build_examples(pipeline | beam.Create(rows), {'journey_max_length': 2})
    all_journeys = [built.splits[s] for s in ('train', 'eval', 'test')] | 'All' >> beam.Flatten()
    assert_that(all_journeys | 'Ids' >> beam.Map(lambda e: (e[module.KEY], e[module.CAMPAIGNS], e[module.LABEL])),
                equal_to([('u1/0', ['b', 'c'], 1), ('u1/1', ['a', ''], 0)]), label='journeys')
    assert_that(built.splits[module.CONVERTING_SPLIT] | 'Conv' >> beam.Map(lambda e: e[module.KEY]),
                equal_to(['u1/0']), label='converting')
    assert_that(built.rejected | beam.Map(lambda r: r['reason']),
                equal_to(['missing_uid', 'unparsable_timestamp', 'truncated_beyond_journey_max_length']),
                label='rejected')


def test_build_examples_in_batches_equals_user_by_user_on_the_bundled_sample():
  """Impressions parsed in batches and grouped per user give exactly the journeys and rejects of reading each
  user's touches at once."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'attribution',
                      'impressions_sample.csv')
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  touches, rejected = {}, []
  for row in rows:
    parsed, reason = module.parse_impression(row)
    if reason:
      rejected.append(reason)
    else:
      touches.setdefault(parsed[0], []).append(parsed[1])
  expected = {'journeys': [], 'truncated': 0}
  for uid, user_touches in touches.items():
    for example, dropped in module.journeys(uid, user_touches, 10):
      expected['journeys'].append(repr(sorted(example.items())))
      expected['truncated'] += len(dropped)
  assert expected['truncated'] > 100
  with beam.Pipeline() as pipeline:
    built = module.build_examples(pipeline | beam.Create(rows), {'journey_max_length': 10})
    all_journeys = [built.splits[s] for s in ('train', 'eval', 'test')] | 'All' >> beam.Flatten()
    assert_that(all_journeys | 'Repr' >> beam.Map(lambda e: repr(sorted(e.items()))),
                equal_to(expected['journeys']), label='journeys')
    assert_that(built.rejected | beam.Map(lambda r: r['reason']),
                equal_to(rejected + ['truncated_beyond_journey_max_length'] * expected['truncated']), label='rejected')
