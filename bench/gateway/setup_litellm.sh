#!/usr/bin/env bash
# Creates the LiteLLM benchmark environment: a SEPARATE virtual environment at
# bench/gateway/.litellm-venv (git-ignored). LiteLLM is never a project dependency;
# only bench/gateway/run.py uses it, by running `.litellm-venv/bin/litellm` as a process.
#
#   bash bench/gateway/setup_litellm.sh            # create or update it
#   PYTHON=python3.12 bash bench/gateway/setup_litellm.sh
#
# The version is pinned so that figures from different days compare. 1.108.7 is the
# newest whose [proxy] extra resolves on PyPI (from 1.108.8 on it requires a
# `litellm-proxy` distribution that PyPI does not serve).
set -euo pipefail
LITELLM_VERSION="${LITELLM_VERSION:-1.108.7}"
PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.litellm-venv"

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
# With two additions that only make LiteLLM faster, so that it is measured at its best:
# - httptools: uvicorn's C HTTP parser (part of uvicorn[standard], which LiteLLM's
#   [proxy] extra does not pull in; without it uvicorn parses with pure-Python h11);
#   cloudhedge's gateway uses it too;
# - opentelemetry-api/-sdk: without them LiteLLM retries a failing import of its
#   OpenTelemetry plumbing on every request (about 7% of its CPU time here).
"$VENV/bin/pip" install -q "litellm[proxy]==${LITELLM_VERSION}" \
    "httptools>=0.6,<1" "opentelemetry-api>=1.30,<2" "opentelemetry-sdk>=1.30,<2"
"$VENV/bin/python" -c 'import importlib.metadata as m; print("litellm", m.version("litellm"))'
echo "LiteLLM is ready: $VENV/bin/litellm"
