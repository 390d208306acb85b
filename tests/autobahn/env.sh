# Sourced by tests/setup.sh and tests/autobahn/run.sh: where the Autobahn|Testsuite lives.
# pyenv's Python 2.7.18 (the last Python that wstest runs on), found without pyenv's shims on
# PATH; wstest is in that Python's user script directory (pip install --user: ~/.local/bin).
if [ -z "${PYENV_ROOT:-}" ]; then
  if command -v pyenv >/dev/null 2>&1; then
    PYENV_ROOT=$(pyenv root)
  else
    PYENV_ROOT=$HOME/.pyenv
  fi
fi
AUTOBAHN_PYTHON=$PYENV_ROOT/versions/2.7.18/bin/python
AUTOBAHN_REQUIREMENTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements.txt
# Prints the path of wstest (which need not exist yet); fails if there is no Python 2.7.18.
autobahn_wstest() {
  if [ ! -x "$AUTOBAHN_PYTHON" ]; then
    echo "autobahn: no Python 2.7.18 at $AUTOBAHN_PYTHON (pyenv install 2.7.18)" >&2
    return 1
  fi
  echo "$("$AUTOBAHN_PYTHON" -m site --user-base)/bin/wstest"
}
# Succeeds when every pin of requirements.txt is what is installed for that Python, and wstest is there.
autobahn_installed() {
  local wstest
  wstest=$(autobahn_wstest 2>/dev/null) && [ -x "$wstest" ] &&
    "$AUTOBAHN_PYTHON" - "$AUTOBAHN_REQUIREMENTS" 2>/dev/null <<'PY'
import sys, pkg_resources
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, version = line.split("==")
        if pkg_resources.get_distribution(name).version != version:
            sys.exit(1)
PY
}
