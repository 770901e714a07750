"""CLI user errors: one clear line on stderr, exit code 2, before any pipeline runs."""
import os
import subprocess
import sys

import pytest

from pipelines import registry
from pipelines.__main__ import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, cwd=REPO):
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1', PYTHONPATH=REPO)
  return subprocess.run([sys.executable, '-m', 'pipelines', *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=300)


def _last_line(stderr: str) -> str:
  return [line for line in stderr.splitlines() if line.strip()][-1]


def test_list_names_clv_and_its_settings(capsys):
  assert main(['list']) == 0
  stdout = capsys.readouterr().out
  assert stdout.startswith('clv:')
  assert '--set loss=mse' in stdout


@pytest.mark.parametrize('args, message', [
    (('run', 'nope'), f"error: unknown use case 'nope'; known: {', '.join(sorted(registry.USE_CASES))}"),
    (('run', 'clv', '--data', '/no/such/file.csv'), 'error: data file not found: /no/such/file.csv'),
    (('run', 'clv', '--set', 'no_such_key=1'), "error: unknown setting 'no_such_key' for clv"),
    (('run', 'clv', '--set', 'epochs=many'), "error: setting epochs='many' is not a valid int"),
    (('run', 'clv', '--set', 'loss=hinge'), "error: setting loss='hinge' must be one of mse, ziln"),
])
def test_usage_errors_exit_2_with_one_line(args, message, tmp_path, capsys):
  assert main([*args, '--output', str(tmp_path)]) == 2
  stderr = capsys.readouterr().err
  assert stderr.strip().splitlines() == [stderr.strip()] and stderr.startswith(message)
  assert not list(tmp_path.iterdir())  # nothing ran


def test_missing_column_exits_2(tmp_path, capsys):
  data = tmp_path / 'tx.csv'
  data.write_text('customer_id,date,amount\n1,1997-01-01,3.5\n')
  assert main(['run', 'clv', '--data', str(data), '--output', str(tmp_path / 'out')]) == 2
  assert capsys.readouterr().err.startswith(f'error: {data} lacks required column(s) quantity')


def test_python_m_pipelines_exits_2_on_unknown_use_case(tmp_path):
  result = _cli('run', 'nope', '--output', str(tmp_path))
  assert result.returncode == 2
  assert _last_line(result.stderr) == f"error: unknown use case 'nope'; known: {', '.join(sorted(registry.USE_CASES))}"
  assert 'Traceback' not in result.stderr
