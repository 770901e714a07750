#!/usr/bin/env bash
# Prints the path of a working Python 3.10 interpreter, or one line saying what to install (exit 1).
for candidate in \
    "$(command -v pyenv >/dev/null 2>&1 && pyenv prefix 3.10.13 2>/dev/null)/bin/python3.10" \
    "$(command -v pyenv >/dev/null 2>&1 && for v in $(pyenv versions --bare 2>/dev/null | grep '^3\.10\.'); do pyenv prefix "$v"; done | tail -n 1)/bin/python3.10" \
    "$(command -v python3.10 2>/dev/null)"; do
  if [ -x "$candidate" ] && "$candidate" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
    echo "$candidate"
    exit 0
  fi
done
echo "Python 3.10 not found: install it (e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv') and retry."
exit 1
