"""What a person sees during a run: one line per component as it starts and ends, and the run's last line.

Everything else (absl INFO from TFX, Beam and TensorFlow, their C++ logs, third-party warnings) goes to the run's
log file, `runs/<use case>/logs/run.log`: `capture` points the process's stdout and stderr file descriptors at a
file, so output of C++ code and of Beam worker processes is kept too. With `--verbose` nothing is redirected.
"""
import contextlib
import dataclasses
import io
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import IO, Iterator, List, Optional

from absl import logging as absl_logging

_STARTED = 'Component %s is running.'
_FINISHED = 'Component %s is finished.'
_CACHED = 'A cached execution %d is used.'


def _terminal(stream: IO[str], fd: int) -> IO[str]:
  """A stream that reaches what `stream` reaches now, even after fd `fd` is pointed elsewhere."""
  try:
    if stream.fileno() == fd:
      return os.fdopen(os.dup(fd), 'w', buffering=1, encoding=getattr(stream, 'encoding', None) or 'utf-8')
  except (AttributeError, OSError, io.UnsupportedOperation):
    pass
  return stream  # not backed by the fd (e.g. pytest's capture): unaffected by the redirection


@dataclasses.dataclass
class Console:
  """The terminal's streams while a run's output is captured, and where the captured output goes."""
  out: IO[str]
  err: IO[str]
  verbose: bool
  log_path: Optional[str] = None
  _target: Optional[IO[bytes]] = None

  def attach_log(self, path: str) -> None:
    """From now on the captured output goes to `path` (created, with what was captured so far at its top)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if self.verbose:
      handler = logging.FileHandler(path, mode='w')
      handler.setFormatter(logging.Formatter('%(levelname)s %(asctime)s %(name)s: %(message)s'))
      logging.getLogger().addHandler(handler)
      self.log_path = path
      return
    target = open(path, 'wb')
    if self._target is not None:
      _flush()
      self._target.seek(0)
      shutil.copyfileobj(self._target, target)
      target.flush()
    _point_fds_at(target)
    self._target, self.log_path = target, path

  @contextlib.contextmanager
  def components(self, total: int) -> Iterator[None]:
    """Prints '[ i/total] node ...' as each pipeline node starts and ends, from the orchestrator's log."""
    handler = _ProgressHandler(self.out, total)
    absl_logger = logging.getLogger('absl')
    absl_logger.addHandler(handler)
    try:
      yield
    finally:
      absl_logger.removeHandler(handler)


class _ProgressHandler(logging.Handler):
  """Turns LocalDagRunner's 'Component X is running/finished' log records into progress lines."""

  def __init__(self, out: IO[str], total: int):
    super().__init__(level=logging.INFO)
    self._out, self._total = out, total
    self._index, self._started, self._cached = 0, 0.0, False

  def emit(self, record: logging.LogRecord) -> None:
    if record.msg == _STARTED:
      self._index += 1
      self._started, self._cached = time.time(), False
      self._print(f'{record.args[0]} ...')
    elif record.msg == _CACHED:
      self._cached = True
    elif record.msg == _FINISHED:
      seconds = time.time() - self._started
      self._print(f'{record.args[0]} {"cached" if self._cached else "done"} in {seconds:.1f} s')

  def _print(self, text: str) -> None:
    width = len(str(self._total))
    self._out.write(f'[{self._index:>{width}}/{self._total}] {text}\n')
    self._out.flush()


def _flush() -> None:
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (AttributeError, ValueError):
      pass


def _point_fds_at(target: IO[bytes]) -> None:
  _flush()
  os.dup2(target.fileno(), 1)
  os.dup2(target.fileno(), 2)


_active: List[Console] = []


@contextlib.contextmanager
def capture(verbose: bool) -> Iterator[Console]:
  """Redirects fds 1 and 2 (and absl's handler) into a buffer until `Console.attach_log` names the log file;
  yields the terminal's streams. Nested calls (a run that starts another) share the terminal and return to the
  outer log on exit. An exception leaving the block puts the captured output on the terminal's stderr."""
  if _active:
    outer = _active[-1]
    console = Console(outer.out, outer.err, outer.verbose)
    _active.append(console)
    try:
      yield console
    finally:
      _active.pop()
      if console._target is not None:  # the inner run's log: back to the outer one
        _point_fds_at(outer._target)
        console._target.close()
    return
  console = Console(_terminal(sys.stdout, 1), _terminal(sys.stderr, 2), verbose)
  if verbose:
    _active.append(console)
    try:
      yield console
    finally:
      _active.pop()
    return
  saved = os.dup(1), os.dup(2)
  console._target = tempfile.TemporaryFile()
  _point_fds_at(console._target)
  absl_handler = absl_logging.get_absl_handler().python_handler
  absl_stream = absl_handler.stream
  absl_handler.stream = sys.stderr
  _active.append(console)
  failed = False
  try:
    yield console
  except BrokenPipeError:  # the reader of our output went away (`... | head`): nothing to show
    raise
  except BaseException:
    failed = True
    raise
  finally:
    _active.pop()
    _flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    for fd in saved:
      os.close(fd)
    absl_handler.stream = absl_stream
    if failed and console.log_path is None:
      console._target.seek(0)
      console.err.write(console._target.read().decode('utf-8', 'replace'))
    elif failed:
      console.err.write(f'(full log: {console.log_path})\n')
    console._target.close()
