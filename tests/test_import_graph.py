"""The layout's rules, from the import graph of pipelines/ and modules/ (every import statement, at module level or
inside a function): no import cycles, and no shared code importing a use case. A use case is the package
pipelines/<use case>/ with its module file modules/<use case>.py; only pipelines.registry imports use cases."""
import ast
import os
from typing import Dict, List, Set

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USE_CASES = ('clv', 'recommender', 'sales_forecast', 'attribution', 'batch_inference')
ALLOWED_TO_IMPORT_USE_CASES = {'pipelines.registry'}
# batch_inference's generated default input is CLV customers, made with CLV's own feature code.
CROSS_USE_CASE_IMPORTS = {('pipelines.batch_inference.generate', 'modules.clv')}


def _module_names(root: str, packages: List[str]) -> Dict[str, str]:
  """Dotted module name -> file path, for every .py file under `packages`."""
  names = {}
  for package in packages:
    for directory, _, files in os.walk(os.path.join(root, package)):
      for file in files:
        if file.endswith('.py'):
          path = os.path.join(directory, file)
          dotted = os.path.relpath(path, root)[:-len('.py')].replace(os.sep, '.')
          names[dotted[:-len('.__init__')] if dotted.endswith('.__init__') else dotted] = path
  return names


def import_graph(root: str, packages: List[str]) -> Dict[str, Set[str]]:
  """module -> the modules of `packages` it imports (an imported package's __init__ is not an edge of its
  submodules: `from a.b import c` is an edge to a.b.c when that is a module, else to a.b)."""
  names = _module_names(root, packages)
  graph: Dict[str, Set[str]] = {name: set() for name in names}
  for name, path in names.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    for node in ast.walk(tree):
      targets = []
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ''
        if node.level:
          base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1] + ([base] if base else []))
        targets = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in names else base for alias in node.names]
      graph[name].update(t for t in targets if t in names and t != name)
  return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """The strongly connected components of more than one module (Tarjan)."""
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  stack: List[str] = []
  found: List[List[str]] = []

  def visit(node: str) -> None:
    index[node] = low[node] = len(index)
    stack.append(node)
    for target in sorted(graph[node]):
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def use_case_of(module: str) -> str:
  """The use case a module belongs to, or '' for shared code."""
  parts = module.split('.')
  if len(parts) >= 2 and parts[0] in ('pipelines', 'modules') and parts[1] in USE_CASES:
    return parts[1]
  return ''


def layout_violations(graph: Dict[str, Set[str]]) -> List[str]:
  """'a -> b' for shared code importing a use case and for a use case importing another one."""
  violations = []
  for module, targets in sorted(graph.items()):
    if module in ALLOWED_TO_IMPORT_USE_CASES:
      continue
    for target in sorted(targets):
      if (use_case_of(target) and use_case_of(target) != use_case_of(module)
          and (module, target) not in CROSS_USE_CASE_IMPORTS):
        violations.append(f'{module} -> {target}')
  return violations


@pytest.fixture(scope='module')
def project_graph():
  return import_graph(REPO, ['pipelines', 'modules'])


def test_every_use_case_is_one_package_beside_its_module_file(project_graph):
  for use_case in USE_CASES:
    assert f'pipelines.{use_case}.pipeline' in project_graph and f'modules.{use_case}' in project_graph


def test_no_import_cycles(project_graph):
  assert cycles(project_graph) == []


def test_shared_code_imports_no_use_case(project_graph):
  assert layout_violations(project_graph) == []


def test_the_checks_fail_on_a_cycle_and_on_shared_code_importing_a_use_case(tmp_path):
  """The same checks on a copy of the layout's shape with the two faults put in on purpose."""
  files = {
      'pipelines/__init__.py': '',
      'pipelines/report.py': 'from pipelines.clv import pipeline\n',          # shared -> use case
      'pipelines/clv/__init__.py': '',
      'pipelines/clv/pipeline.py': 'from pipelines import wiring\n',
      'pipelines/wiring.py': 'def f():\n  from pipelines.clv import pipeline\n',  # cycle inside a function
      'modules/__init__.py': '',
      'modules/clv.py': 'from pipelines import wiring\n',
  }
  for path, text in files.items():
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(text)
  graph = import_graph(str(tmp_path), ['pipelines', 'modules'])
  assert cycles(graph) == [['pipelines.clv.pipeline', 'pipelines.wiring']]
  assert layout_violations(graph) == ['pipelines.report -> pipelines.clv.pipeline',
                                      'pipelines.wiring -> pipelines.clv.pipeline']
