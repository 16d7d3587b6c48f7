#!/usr/bin/env bash
# `make dev`: the demo, left running for work by hand. Starts PostgreSQL and Kafka if they are not
# up, advance-sim seeded with the demo population, and doppel serve with a fresh API key and
# callback token, and a reviewer's and a lead's console accounts; publishes the demo events;
# prints the review console's URL, the accounts, the key and the token; runs until Ctrl-C, then
# stops what it started (infrastructure that was already running is left running). DEV_HTTP_ADDR
# picks doppel serve's address (127.0.0.1:8080).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
exec bash scripts/with-infra.sh "$ROOT/bin/doppel-demo" --dev
