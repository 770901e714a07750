"""python -m pipelines: the CLI (pipelines.cli), with TensorFlow's, TFX's and Beam's own output captured into the
run's log file from the first import on (pipelines.progress)."""
import sys
from typing import List, Optional

from pipelines import progress


def main(argv: Optional[List[str]] = None) -> int:
  """Entry point; returns the exit code."""
  argv = list(sys.argv[1:] if argv is None else argv)
  with progress.capture(verbose='--verbose' in argv) as console:
    from pipelines import cli  # pylint: disable=g-import-not-at-top  (imports TensorFlow: inside the capture)
    return cli.main(argv, console)


if __name__ == '__main__':
  sys.exit(main())
