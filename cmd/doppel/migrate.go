package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/migrations"
)

func (a *app) migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply, revert or repair the schema migrations (needs only DOPPEL_DATABASE_URL)",
		Long: `Manages the PostgreSQL schema with the migrations embedded in the binary, as golang-migrate's
CLI does. Only DOPPEL_DATABASE_URL is needed: no brokers, no vendor keys.`,
		Args: cobra.NoArgs,
	}
	var yes bool
	down := &cobra.Command{
		Use:   "down",
		Short: "Revert the latest migration (asks first: it drops tables, including the review audit)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withMigrator(func(m *postgres.Migrator, current uint, ok bool) error {
				if !ok {
					_, err := fmt.Fprintln(a.stdout, "no migration applied: nothing to revert")
					return err
				}
				if err := a.confirmDown(current, previousVersion(current), yes); err != nil {
					return err
				}
				return m.Down()
			})
		},
	}
	down.Flags().BoolVar(&yes, "yes", false, "revert without asking")
	var gotoYes bool
	gotoCmd := &cobra.Command{
		Use:   "goto VERSION",
		Short: "Migrate up or down to VERSION (asks first when that reverts migrations)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := strconv.ParseUint(args[0], 10, 32)
			if err != nil {
				return fmt.Errorf("VERSION must be a migration number such as 2, got %q", args[0])
			}
			return a.withMigrator(func(m *postgres.Migrator, current uint, ok bool) error {
				if ok && uint(target) < current {
					if err := a.confirmDown(current, uint(target), gotoYes); err != nil {
						return err
					}
				}
				return m.Goto(uint(target))
			})
		},
	}
	gotoCmd.Flags().BoolVar(&gotoYes, "yes", false, "revert without asking when VERSION is below the current one")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "up",
			Short: "Apply every migration not yet applied",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				return a.withMigrator(func(m *postgres.Migrator, _ uint, _ bool) error { return m.Up() })
			},
		},
		down,
		gotoCmd,
		&cobra.Command{
			Use:   "force VERSION",
			Short: "Record VERSION as applied and clear the dirty flag, running nothing (after a hand repair)",
			Long: `Sets the recorded schema version without running any migration, and clears the dirty flag that a
migration failing half-way leaves. Repair the schema by hand first, then force the version it is
now at (-1: none applied, written "doppel migrate force -- -1"). Like golang-migrate's force.`,
			Args: cobra.ExactArgs(1),
			RunE: func(_ *cobra.Command, args []string) error {
				v, err := strconv.Atoi(args[0])
				if err != nil || v < -1 {
					return fmt.Errorf("VERSION must be a migration number, or -1 for none, got %q", args[0])
				}
				return a.withMigrator(func(m *postgres.Migrator, _ uint, _ bool) error { return m.Force(v) })
			},
		},
		&cobra.Command{
			Use:   "version",
			Short: "Print the schema version and whether the last migration failed half-way (dirty)",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				return a.withMigrator(func(*postgres.Migrator, uint, bool) error { return nil })
			},
		},
	)
	return cmd
}

// withMigrator runs fn with a migrator and the current version, then prints the version reached.
func (a *app) withMigrator(fn func(m *postgres.Migrator, current uint, ok bool) error) error {
	cfg, err := a.load(a.warnStderr, databaseSettings...)
	if err != nil {
		return err
	}
	m, err := postgres.NewMigrator(cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	v, _, ok, err := m.Version()
	if err != nil {
		return err
	}
	if err := fn(m, v, ok); err != nil {
		return err
	}
	v, dirty, ok, err := m.Version()
	if err != nil {
		return err
	}
	if !ok {
		_, err = fmt.Fprintln(a.stdout, "schema version: none (no migration applied)")
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "schema version: %d (dirty: %t)\n", v, dirty)
	return err
}

// confirmDown says what reverting from version from down to version to drops, and asks for "yes"
// on stdin unless yes is set.
func (a *app) confirmDown(from, to uint, yes bool) error {
	fmt.Fprintf(a.stderr, "Reverting the schema from version %d to %d runs:\n", from, to)
	audit := false
	for v := from; v > to; v-- {
		name, drops, err := downStatements(v)
		if errors.Is(err, errNoMigration) && v != from {
			continue // version numbers need not be contiguous: golang-migrate steps over gaps
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "  %s:\n", name)
		for _, d := range drops {
			fmt.Fprintf(a.stderr, "    %s\n", d)
			audit = audit || strings.Contains(d, "link_reviews")
		}
	}
	if audit {
		fmt.Fprintln(a.stderr, "This drops link_reviews, the analysts' append-only review audit: every review "+
			"decision recorded is lost for good. Back it up first (pg_dump -t link_reviews).")
	}
	if yes {
		return nil
	}
	fmt.Fprint(a.stderr, `Type "yes" to revert: `)
	answer, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return err
	}
	if strings.TrimSpace(answer) != "yes" {
		return fmt.Errorf("not reverted (answer %q); pass --yes to revert without asking", strings.TrimSpace(answer))
	}
	return nil
}

var errNoMigration = errors.New("no down migration")

// previousVersion is the highest migration version below v in this binary (0 when none): where one
// step down lands, since version numbers need not be contiguous.
func previousVersion(v uint) uint {
	for p := v - 1; p > 0; p-- {
		if matches, _ := fs.Glob(migrations.FS, fmt.Sprintf("%06d_*.up.sql", p)); len(matches) == 1 {
			return p
		}
	}
	return 0
}

var destructive = regexp.MustCompile(`(?i)^\s*(DROP|ALTER|DELETE|TRUNCATE)\b`)

// downStatements returns the name of migration version's down file and its destructive statements.
func downStatements(version uint) (string, []string, error) {
	matches, err := fs.Glob(migrations.FS, fmt.Sprintf("%06d_*.down.sql", version))
	if err != nil || len(matches) != 1 {
		return "", nil, fmt.Errorf("%w for version %d in this binary", errNoMigration, version)
	}
	raw, err := fs.ReadFile(migrations.FS, matches[0])
	if err != nil {
		return "", nil, err
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		if destructive.MatchString(line) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return path.Base(matches[0]), out, nil
}
