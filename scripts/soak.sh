#!/usr/bin/env bash
# Runs the fault soak (`make soak`): builds bin/doppel, bin/advance-sim and bin/doppel-soak, brings
# PostgreSQL and Kafka up through scripts/with-infra.sh (which stops again whatever it started), and
# runs bin/doppel-soak, which starts advance-sim and `doppel serve` itself, kills and restarts doppel,
# restarts PostgreSQL and the broker with scripts/infra.sh, and prints the ledger.
#
# Arguments are passed to doppel-soak, e.g. `bash scripts/soak.sh -events 20000 -duration 2m`;
# `bin/doppel-soak -h` lists them. Results: the ledger on stdout, soak-results/ledger.json,
# soak-results/logs/ and docs/soak.md. The exit status is doppel-soak's: non-zero when an event was
# lost, a link doubled, or another check of the ledger failed.
#
# The soak stops and starts the shared PostgreSQL and Kafka: do not run it next to `make test` or
# `make bench`, which use the same servers.
exec bash "$(dirname "${BASH_SOURCE[0]}")/run-harness.sh" doppel-soak "$@"
