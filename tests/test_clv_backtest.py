"""CLV backtest: the future split and the figures on a hand-made file, then `backtest clv` end to end on the sample."""
import csv
import datetime
import json

import numpy as np
import pytest

from conftest import SAMPLE
from pipelines.__main__ import main
from pipelines.clv import backtest

D = datetime.date
CUT = D(1998, 2, 28)
ROWS = [  # customer_id, date, quantity, amount
    ('a', '1997-01-05', 1, 10.0),
    ('a', '1997-12-01', 1, 20.0),    # in the last 120-day window before the cut (naive)
    ('a', '1998-02-28', 2, 5.0),     # on the cut: known, naive window
    ('a', '1998-03-01', 1, 7.0),     # future
    ('a', '1998-06-28', 1, 3.0),     # future (cut + 120 days)
    ('b', '1997-02-01', 1, 40.0),    # known, before the naive window
    ('b', '1998-06-29', 1, 99.0),    # after cut + 120: neither known nor future
    ('c', 'not-a-date', 1, 1.0),     # kept for the pipeline to count
    ('d', '1998-04-01', 1, 11.0),    # first seen after the cut: future of an unscored customer
]


def _write(path, rows):
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['customer_id', 'date', 'quantity', 'amount'])
    writer.writerows(rows)


def test_split_at_cut_by_hand(tmp_path):
  source, kept = tmp_path / 'in.csv', tmp_path / 'kept.csv'
  _write(source, ROWS)
  split = backtest.split_at_cut(str(source), CUT, 120, str(kept))
  assert split['future'] == {'a': 10.0, 'd': 11.0}
  assert split['last_window'] == {'a': 25.0}
  assert split['last_date'] == D(1998, 6, 29)
  assert split['rows_kept'] == 5 and split['rows_future'] == 4
  with open(kept) as f:
    assert [r['date'] for r in csv.DictReader(f)] == ['1997-01-05', '1997-12-01', '1998-02-28', '1997-02-01',
                                                       'not-a-date']


def test_compare_by_hand():
  actual = np.array([10.0, 0.0, 30.0, 0.0])
  results = backtest.compare(actual, {'m': np.array([12.0, 1.0, 20.0, 3.0]), 'zero': np.zeros(4)})
  m = results['m']
  assert m['mean_absolute_error'] == pytest.approx((2 + 1 + 10 + 3) / 4)
  assert m['root_mean_squared_error'] == pytest.approx(np.sqrt((4 + 1 + 100 + 9) / 4))
  assert m['predicted_total'] == 36.0 and m['actual_total'] == 40.0 and m['total_ratio'] == pytest.approx(0.9)
  # ranking 20 > 12 > 3 > 1 puts 30 then 10 first: the best possible order
  assert m['normalized_gini'] == pytest.approx(1.0)
  assert results['zero']['normalized_gini'] == 0.0
  assert [r['count'] for r in m['deciles']] == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
  assert backtest.finite(results)['m']['deciles'][9]['mean_label'] is None


def test_a_cut_without_a_full_future_is_a_usage_error(tmp_path, capsys):
  source = tmp_path / 'in.csv'
  _write(source, ROWS)
  assert main(['backtest', 'clv', '--cut', '1998-04-01', '--horizon', '120', '--data', str(source),
               '--output', str(tmp_path / 'runs')]) == 2
  assert 'needs data up to 1998-07-30' in capsys.readouterr().err
  assert main(['backtest', 'clv', '--cut', 'March', '--data', str(source), '--output', str(tmp_path / 'r')]) == 2


@pytest.mark.e2e  # runs the CLV pipeline
def test_backtest_on_the_sample(tmp_path):
  """The pipeline runs as of the cut; the figures are recomputed here from predictions.csv and the file."""
  out = tmp_path / 'runs'
  assert main(['backtest', 'clv', '--cut', '1998-02-28', '--horizon', '120', '--data', SAMPLE,
               '--output', str(out), '--set', 'epochs=5']) == 0
  run_dir = out / 'clv'
  summary = json.loads((run_dir / 'summary.json').read_text())
  result = summary['backtest']
  assert result == json.loads((run_dir / 'backtest.json').read_text())
  assert summary['settings']['threshold_date'] == '1997-10-31' and summary['settings']['predict_end'] == '1998-02-28'
  assert summary['data']['skipped'].get('after_predict_end', 0) == 0  # the pipeline never saw the future
  future, scored = {}, {}
  with open(SAMPLE) as f:
    for row in csv.DictReader(f):
      if '1998-02-28' < row['date'] <= '1998-06-28':
        future[row['customer_id']] = future.get(row['customer_id'], 0.0) + float(row['amount'])
  with open(run_dir / 'predictions.csv') as f:
    for row in csv.DictReader(f):
      scored[row['customer_id']] = (float(row['predicted_value']), float(row['btyd_clv']))
  customers = sorted(scored)
  assert result['customers'] == len(customers) == 2357
  actual = np.array([future.get(c, 0.0) for c in customers])
  for name, column in (('headline', 0), ('btyd', 1)):
    predicted = np.array([scored[c][column] for c in customers])
    assert result['models'][name]['mean_absolute_error'] == pytest.approx(np.abs(predicted - actual).mean())
    assert result['models'][name]['actual_total'] == pytest.approx(actual.sum())
  assert set(result['models']) == {'headline', 'dnn', 'btyd', 'naive', 'mean'}
  report = (run_dir / 'report.md').read_text()
  btyd = result['models']['btyd']
  assert f"| btyd | {btyd['mean_absolute_error']:.4g} | {btyd['root_mean_squared_error']:.4g} |" in report
  assert (run_dir / backtest.PLOT_FILE).stat().st_size > 10_000
