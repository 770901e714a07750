"""Every attribution method against ground truth on three simulators: the bundled data
(pipelines/attribution/simulate.py), simulator B (pipelines/attribution/simulator_b.py: a fixed engagement drives
purchases and retargeting worth nothing) and simulator C (pipelines/attribution/simulator_c.py: a funnel of user
states, upper-funnel campaigns two steps before the purchase), each through the whole pipeline. Prints Spearman and
total absolute error per method side by side, the model's test AUC beside the logistic regression's, the seconds of
the counterfactual pass and of the impression process, and each campaign's share of triggered touches.

Run: python benchmarks/attribution_simulators.py [--output /tmp/attr-bench] [--seed 11] [--seed-c 21] [--users 12000]
     [--set key=value ...]   (settings for every run, e.g. --set epochs=4)
"""
import argparse
import json
import os
import sys
from typing import Dict, List

from pipelines.__main__ import main as cli
from pipelines.attribution import simulator_b, simulator_c
from pipelines.attribution.pipeline import DEFAULT_DATA


def run(name: str, data: str, truth: str, output: str, settings: List[str]) -> Dict:
  """Runs the pipeline on `data` with ground truth `truth`; returns its summary.json."""
  args = ['run', 'attribution', '--data', data, '--output', os.path.join(output, name),
          '--set', f'ground_truth={truth}']
  for setting in settings:
    args += ['--set', setting]
  if cli(args) != 0:
    sys.exit(f'{name}: the pipeline failed')
  with open(os.path.join(output, name, 'attribution', 'summary.json')) as f:
    return json.load(f)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output', default='/tmp/attr-bench')
  parser.add_argument('--seed', type=int, default=11)
  parser.add_argument('--seed-c', type=int, default=21)
  parser.add_argument('--users', type=int, default=12000)
  parser.add_argument('--set', action='append', default=[])
  args = parser.parse_args()
  simulated = os.path.join(args.output, 'simulator_b_data')
  simulator_b.main([simulated, '--users', str(args.users), '--seed', str(args.seed)])
  simulated_c = os.path.join(args.output, 'simulator_c_data')
  simulator_c.main([simulated_c, '--users', str(args.users), '--seed', str(args.seed_c)])
  summaries = {
      'bundled': run('bundled', DEFAULT_DATA, os.path.join(os.path.dirname(DEFAULT_DATA), 'ground_truth.csv'),
                     args.output, args.set),
      'simulator_b': run('simulator_b', os.path.join(simulated, 'impressions.csv'),
                         os.path.join(simulated, 'ground_truth.csv'), args.output, args.set),
      'simulator_c': run('simulator_c', os.path.join(simulated_c, 'impressions.csv'),
                         os.path.join(simulated_c, 'ground_truth.csv'), args.output, args.set)}
  methods = list(summaries['bundled']['metrics']['attribution'])
  print(f'{"method":24s}' + ''.join(f'{name + " rho":>18s}{"abs err":>10s}' for name in summaries))
  for method in methods:
    cells = ''
    for summary in summaries.values():
      entry = summary['metrics']['attribution'].get(method, {})
      cells += f'{entry.get("spearman", float("nan")):18.3f}{entry.get("abs_error", float("nan")):10.0f}'
    print(f'{method:24s}{cells}')
  for name, summary in summaries.items():
    data = summary['data']
    print(f'{name}: headline {data.get("attributed_by")}, test AUC model {summary["metrics"]["model"]["auc"]:.3f} vs '
          f'logistic regression {summary["metrics"]["logistic_regression"]["auc"]:.3f}, counterfactual pass '
          f'{data.get("counterfactual_seconds")} s over {data["journeys"]} journeys, impression process '
          f'{data.get("triggering_seconds")} s, wall {summary["wall_seconds"]} s')
    print(f'  triggered share: ' + ', '.join(f'{c} {v:.2f}' for c, v in data.get('triggered_share', {}).items()))


if __name__ == '__main__':
  main()
