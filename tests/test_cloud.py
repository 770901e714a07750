"""Cloud runs, checked offline: Vertex compile, Dataflow args, BigQuery SQL and identifiers, credentials,
and the packaging the container image relies on."""
import json
import os
import re
import subprocess
import sys

import apache_beam as beam
import pytest
from apache_beam.options import pipeline_options
from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner
from apache_beam.runners.portability import stager
from tfx.dsl.components.base.base_beam_component import BaseBeamComponent
from tfx.utils import dependency_utils

from pipelines import bigquery, registry, runners
from pipelines.__main__ import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOUD_FLAGS = ['--project', 'my-project-1', '--region', 'europe-west4', '--temp-location', 'gs://my-bucket/tmp']
IMAGE = 'europe-west4-docker.pkg.dev/my-project-1/marketing-ml/tfx:test'


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
  """No Application Default Credentials anywhere: no key file, an empty gcloud config, no GCE metadata."""
  monkeypatch.delenv('GOOGLE_APPLICATION_CREDENTIALS', raising=False)
  monkeypatch.setenv('CLOUDSDK_CONFIG', str(tmp_path / 'gcloud'))
  monkeypatch.setenv('NO_GCE_CHECK', 'True')


def _settings(use_case_name, **overrides):
  use_case = registry.get(use_case_name)
  return registry.resolve_settings(use_case, [f'{k}={v}' for k, v in overrides.items()])


def _cloud():
  return runners.CloudConfig(project='my-project-1', region='europe-west4', temp_location='gs://my-bucket/tmp',
                             pipeline_root='gs://my-bucket/tfx/clv', image=IMAGE)


# --- BigQuery -----------------------------------------------------------------------------------------------

def test_query_selects_the_columns_as_strings_from_the_quoted_table():
  table = bigquery.BigQueryTable.parse('bq://my-project-1.sales_eu.transactions-2024')
  assert table == bigquery.BigQueryTable('my-project-1', 'sales_eu', 'transactions-2024')
  assert bigquery.select_as_strings(table, ['customer_id', 'date'], {'date': 'order_date'}) == (
      'SELECT\n  CAST(`customer_id` AS STRING) AS `customer_id`,\n'
      '  CAST(`order_date` AS STRING) AS `date`\nFROM `my-project-1.sales_eu.transactions-2024`')


@pytest.mark.parametrize('uri', [
    'bq://my-project-1.sales.t`; DROP TABLE x; --',
    'bq://my-project-1.sales.t WHERE 1=1',
    'bq://my-project-1.sales`.t',
    'bq://My_Project.sales.t',
    'bq://my-project-1.sales',
    'bq://my-project-1.sales.t.extra',
    'bq://my-project-1.sa les.t',
    'bq://my-project-1.sales.t\n',
])
def test_injection_attempts_in_table_identifiers_are_refused(uri):
  with pytest.raises(bigquery.InvalidIdentifier):
    bigquery.BigQueryTable.parse(uri)


@pytest.mark.parametrize('column_map', ['date:order_date` , 1 AS `x', 'date:a b', 'date:1st', 'date', 'nope:x'])
def test_bad_column_maps_are_refused(column_map):
  table = bigquery.BigQueryTable.parse('bq://my-project-1.sales.t')
  with pytest.raises(bigquery.InvalidIdentifier):
    bigquery.select_as_strings(table, ['customer_id', 'date'], bigquery.parse_column_map(column_map))


def test_cli_refuses_an_injected_table_with_one_line_and_exit_2(tmp_path, capsys):
  args = ['run', 'clv', '--data', 'bq://my-project-1.sales.t`;DROP TABLE x', '--output', str(tmp_path), *CLOUD_FLAGS]
  assert main(args) == 2
  stderr = capsys.readouterr().err.strip()
  assert stderr.splitlines() == [stderr]
  assert stderr.startswith("error: invalid BigQuery table 't`;DROP TABLE x'")


# --- Dataflow -----------------------------------------------------------------------------------------------

def test_dataflow_args_are_what_beam_and_dataflow_accept():
  args = runners.dataflow_args(_cloud(), _settings('clv', dataflow_machine_type='n2-standard-8',
                                                   dataflow_max_workers=25))
  options = pipeline_options.PipelineOptions(args)
  # Every flag is one Beam knows and keeps, with our value.
  passed = {arg[2:].split('=', 1)[0] for arg in args}
  known = options.get_all_options(retain_unknown_options=False)
  assert passed <= set(known) | {'experiments'}
  assert options.view_as(pipeline_options.StandardOptions).runner == 'DataflowRunner'
  cloud = options.view_as(pipeline_options.GoogleCloudOptions)
  assert (cloud.project, cloud.region, cloud.temp_location) == ('my-project-1', 'europe-west4', 'gs://my-bucket/tmp')
  workers = options.view_as(pipeline_options.WorkerOptions)
  assert (workers.machine_type, workers.max_num_workers, workers.disk_size_gb) == ('n2-standard-8', 25, 50)
  assert workers.sdk_container_image == IMAGE
  assert 'use_runner_v2' in options.view_as(pipeline_options.DebugOptions).experiments
  # Dataflow's own option checks (project id, region, GCS paths) find nothing to complain about. dry_run skips
  # only Beam's bucket soft-delete lookup, which needs credentials and GCS (2 minutes of retries offline).
  dry_run = pipeline_options.PipelineOptions(args + ['--dry_run=True'])
  assert PipelineOptionsValidator(dry_run, DataflowRunner()).validate() == []


def test_dataflow_setup_file_replaces_the_worker_image():
  args = runners.dataflow_args(_cloud(), _settings('clv', dataflow_setup_file='./setup.py'))
  options = pipeline_options.PipelineOptions(args)
  assert options.view_as(pipeline_options.SetupOptions).setup_file == './setup.py'
  assert options.view_as(pipeline_options.WorkerOptions).sdk_container_image is None


def test_direct_runner_args_spare_tfx_its_sdist_build():
  """TFX adds an sdist of itself to beam args that name no dependency (3.3 s per Beam component); ours name
  setup.py."""
  for mode in runners.BEAM_MODES:
    args = runners.direct_runner_args(mode, 2)
    assert dependency_utils.make_beam_dependency_flags(args) == args
    assert pipeline_options.PipelineOptions(args).view_as(pipeline_options.SetupOptions).setup_file == (
        os.path.join(REPO, 'setup.py'))


def test_local_beam_runs_on_the_fn_api_runner_and_stages_nothing(monkeypatch, tmp_path):
  """With our local args a Beam pipeline runs on the FnApiRunner: no detour through the Prism runner, which
  would stage the job's dependencies (sdist builds of setup.py) and download its binary."""
  staged = []
  create_job_resources = stager.Stager.create_job_resources
  monkeypatch.setattr(stager.Stager, 'create_job_resources',
                      staticmethod(lambda *a, **k: staged.append(a) or create_job_resources(*a, **k)))
  args = runners.direct_runner_args('in_memory', 1)
  with beam.Pipeline(argv=args) as pipeline:
    _ = (pipeline | beam.Create(range(100)) | beam.Map(lambda x: 2 * x) | beam.CombineGlobally(sum)
         | beam.io.WriteToText(str(tmp_path / 'total'), shard_name_template=''))
  assert type(pipeline.runner).__name__ == 'FnApiRunner'
  assert (tmp_path / 'total').read_text().strip() == str(2 * sum(range(100)))
  assert not staged


@pytest.mark.parametrize('args, message', [
    (['--runner', 'dataflow'], 'error: --runner dataflow needs --data gs://.../file.csv or bq://project.dataset.table'),
    (['--runner', 'dataflow', '--data', 'data/clv/transactions.csv'], 'error: --runner dataflow cannot read the local file'),
    (['--runner', 'dataflow', '--data', 'bq://my-project-1.s.t', '--temp-location', 'gs://b/t'],
     'error: --runner dataflow needs --project (or GOOGLE_CLOUD_PROJECT)'),
    (['--runner', 'vertex', '--data', 'bq://my-project-1.s.t', '--project', 'my-project-1', '--temp-location', '/tmp'],
     "error: --runner vertex needs --temp-location gs://BUCKET/PATH (got '/tmp')"),
    (['--data', 'bq://my-project-1.s.t'], 'error: bq:// input needs --project (or GOOGLE_CLOUD_PROJECT)'),
])
def test_missing_cloud_flags_are_one_line_errors(args, message, tmp_path, capsys, monkeypatch):
  monkeypatch.delenv('GOOGLE_CLOUD_PROJECT', raising=False)
  monkeypatch.chdir(REPO)
  assert main(['run', 'clv', '--output', str(tmp_path), *args]) == 2
  stderr = capsys.readouterr().err.strip()
  assert stderr.splitlines() == [stderr] and stderr.startswith(message)


# --- Credentials --------------------------------------------------------------------------------------------

@pytest.mark.parametrize('runner', ['vertex', 'dataflow'])
def test_cloud_run_without_credentials_says_what_is_missing(runner, no_credentials, tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(REPO)
  assert main(['run', 'clv', '--runner', runner, '--data', 'bq://my-project-1.sales.t', '--output', str(tmp_path),
               *CLOUD_FLAGS]) == 2
  assert capsys.readouterr().err.strip() == (
      'error: no Google Cloud credentials found: run `gcloud auth application-default login` or set '
      'GOOGLE_APPLICATION_CREDENTIALS to a service-account key file')
  assert not (tmp_path / 'clv').exists() or not any((tmp_path / 'clv').glob('*.json'))


# --- Vertex AI Pipelines ------------------------------------------------------------------------------------

def _beam_component_ids(pipeline):
  return {c.id for c in pipeline.components if isinstance(c, BaseBeamComponent)}


# Every use case that trains (batch_inference scores a given model: its Vertex compile is tested in
# test_batch_inference_pipeline_e2e.py).
TRAINING_USE_CASES = sorted(set(registry.USE_CASES) - {'batch_inference'})


@pytest.mark.parametrize('use_case_name', TRAINING_USE_CASES)
def test_vertex_compile_names_every_component_with_the_image_and_parameters(use_case_name, tmp_path, capsys):
  spec_path = tmp_path / f'{use_case_name}_pipeline.json'
  table = 'bq://my-project-1.marketing.input'
  assert main(['compile', use_case_name, '--runner', 'vertex', '--output', str(spec_path), '--data', table,
               '--image', IMAGE, *CLOUD_FLAGS]) == 0
  assert str(spec_path) in capsys.readouterr().out
  spec = json.loads(spec_path.read_text())['pipelineSpec']
  assert spec['pipelineInfo']['name'] == use_case_name.replace('_', '-')

  # The same pipeline object the local runner would run, with the Dataflow args.
  use_case = registry.get(use_case_name)
  settings = registry.resolve_settings(use_case, [])
  cloud = runners.CloudConfig('my-project-1', 'europe-west4', 'gs://my-bucket/tmp', f'gs://my-bucket/tfx/{use_case_name}',
                              IMAGE)
  pipeline = use_case.create_pipeline(
      pipeline_name=use_case_name, pipeline_root=cloud.pipeline_root, data_uri=table,
      serving_dir=f'{cloud.pipeline_root}/serving_model', settings=settings,
      beam_pipeline_args=runners.dataflow_args(cloud, settings))
  expected = {c.id for c in pipeline.components}
  tasks = set(spec['root']['dag']['tasks'])
  resolvers = {c.id for c in pipeline.components if type(c).__name__ == 'Resolver'}
  assert expected - resolvers <= tasks
  for resolver in resolvers:  # a Resolver compiles to one resolver task per input channel
    assert any(task.startswith(resolver + '-') for task in tasks)
  assert 'BigQueryExampleGen' in tasks and 'CsvExampleGen' not in tasks

  executors = spec['deploymentSpec']['executors']
  containers = {name[:-len('_executor')]: e['container'] for name, e in executors.items() if 'container' in e}
  assert set(containers) == expected - resolvers
  assert {c['image'] for c in containers.values()} == {IMAGE}
  for component_id in _beam_component_ids(pipeline):
    args = containers[component_id]['args']
    assert '--runner=DataflowRunner' in args and f'--sdk_container_image={IMAGE}' in args, component_id
    assert '--project=my-project-1' in args and '--temp_location=gs://my-bucket/tmp' in args

  # Module code is referenced by dotted path, so the image's installed packages serve every step.
  parameters = {task: {k: v['runtimeValue']['constantValue'].get('stringValue')
                       for k, v in spec['root']['dag']['tasks'][task]['inputs'].get('parameters', {}).items()}
                for task in tasks if task in containers}
  assert parameters['Trainer']['run_fn'] == f'modules.{use_case_name}.run_fn'
  assert parameters['Transform']['preprocessing_fn'] == f'modules.{use_case_name}.preprocessing_fn'
  assert parameters['ExamplesBuilder']['build_fn'] == f'modules.{use_case_name}.build_examples'
  assert '`my-project-1.marketing.input`' in parameters['BigQueryExampleGen']['input_config']
  assert json.loads(parameters['Pusher']['push_destination'])['filesystem']['base_directory'] == (
      f'gs://my-bucket/tfx/{use_case_name}/serving_model')
  assert spec_path.stat().st_size < 1_000_000


def test_vertex_compile_with_direct_beam_keeps_beam_in_the_step_container(tmp_path):
  spec_path = tmp_path / 'clv.json'
  assert main(['compile', 'clv', '--runner', 'vertex', '--output', str(spec_path), '--data',
               'gs://my-bucket/data/transactions.csv', '--set', 'vertex_beam=direct', *CLOUD_FLAGS]) == 0
  spec = json.loads(spec_path.read_text())['pipelineSpec']
  args = spec['deploymentSpec']['executors']['Transform_executor']['container']['args']
  assert '--direct_running_mode=in_memory' in args and not any('DataflowRunner' in a for a in args)
  assert spec['deploymentSpec']['executors']['CsvExampleGen_executor']['container']['image'] == (
      'europe-west4-docker.pkg.dev/my-project-1/marketing-ml/tfx:latest')
  example_gen = spec['root']['dag']['tasks']['CsvExampleGen']['inputs']['parameters']
  assert example_gen['input_base']['runtimeValue']['constantValue']['stringValue'] == 'gs://my-bucket/data'


# --- Container image ----------------------------------------------------------------------------------------

def _locked(package):
  with open(os.path.join(REPO, 'requirements.lock')) as f:
    return re.search(rf'^{package}==(\S+)$', f.read(), re.M).group(1)


def test_dockerfile_builds_on_tfx_1_16_with_the_locked_beam_and_the_project_installed():
  with open(os.path.join(REPO, 'Dockerfile')) as f:
    lines = [line.strip() for line in f if line.strip() and not line.startswith('#')]
  assert lines[0] == f'FROM tensorflow/tfx:{_locked("tfx")}'
  assert f'COPY --from=apache/beam_python3.10_sdk:{_locked("apache-beam")} /opt/apache/beam /opt/apache/beam' in lines
  assert 'RUN python -m pip install --no-deps -r requirements.lock' in lines
  assert any(line.startswith('RUN python -m pip install --no-deps . ') for line in lines)
  assert any('TF_USE_LEGACY_KERAS=1' in line for line in lines)
  assert lines[-1] == 'ENTRYPOINT ["/opt/apache/beam/boot"]'


def test_the_installed_package_holds_every_module_a_step_imports(tmp_path):
  """What `pip install .` puts in the image: the packages the compiled spec names, without the checkout."""
  subprocess.run([sys.executable, 'setup.py', '-q', 'build_py', '--build-lib', str(tmp_path)], cwd=REPO, check=True,
                 capture_output=True, timeout=300)
  names = {os.path.relpath(os.path.join(root, name), tmp_path) for root, _, files in os.walk(tmp_path) for name in files}
  for use_case_name in registry.USE_CASES:
    assert f'modules/{use_case_name}.py' in names and f'pipelines/{use_case_name}/pipeline.py' in names
  for path in os.listdir(os.path.join(REPO, 'pipelines', 'components')):
    if path.endswith('.py'):
      assert f'pipelines/components/{path}' in names
  assert not any(name.startswith(('data/', 'tests/')) for name in names)
