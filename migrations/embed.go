// Package migrations embeds Doppel's SQL migrations so that the binary can apply them without the
// source tree (`doppel migrate up`, or `doppel serve` with migrate-on-start).
package migrations

import "embed"

// FS holds the numbered up/down migrations, in golang-migrate's file naming.
//
//go:embed *.sql
var FS embed.FS
