#!/usr/bin/env bash
# Runs every test. Installs the few programs the tests use when they are missing (Debian).
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v kill >/dev/null 2>&1 || need+=(procps)
command -v prlimit >/dev/null 2>&1 || need+=(util-linux)
command -v chattr >/dev/null 2>&1 || need+=(e2fsprogs)
command -v nc >/dev/null 2>&1 || need+=(netcat-openbsd)
# Real TLS clients, each tested against the TLS port.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v ncat >/dev/null 2>&1 || need+=(ncat)
# Prometheus's linter, for the /metrics scrape.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# The cluster tests' NATS server, under .tools/ (tests find it there).
scripts/install-nats-server.sh

# The workspace: the daemon, the line client and the load generator (bench/).
cargo test --workspace --all-targets "$@"
