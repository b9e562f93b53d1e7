# Sourced by scripts/*: a project virtualenv in .venv, (re)installed when
# pyproject.toml or constraints.txt changes, at the versions constraints.txt pins.
# Needs only python3 (>= 3.11) and pip on the machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
EXTRAS="${DELIVERY_EXTRAS:-}"
stamp_want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)${EXTRAS}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
if [ "$(cat .venv/.installed 2>/dev/null || true)" != "$stamp_want" ]; then
  echo "==> installing delivery${EXTRAS:+[$EXTRAS]} into .venv" >&2
  .venv/bin/python -m pip install --quiet -c constraints.txt --upgrade pip >&2
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".${EXTRAS:+[$EXTRAS]}" >&2
  echo "$stamp_want" > .venv/.installed
fi
export PATH="$ROOT/.venv/bin:$PATH"
