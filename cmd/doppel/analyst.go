package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/doppelhq/doppel/internal/analyst"
	"github.com/doppelhq/doppel/internal/service"
)

const analystLong = `Manage the review console's local accounts: named analysts who sign in with a password
(single-sign-on analysts are recorded at their first sign-in and listed here too).

Roles: reviewer reads and decides; lead also assigns to others and re-runs searches; admin also
manages analysts. The password is read from stdin (asked twice, unechoed, on a terminal), never
from a flag, and stored as an argon2id hash. Needs only DOPPEL_DATABASE_URL.`

func (a *app) analystCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "analyst",
		Short: "Add, list, disable and enable the review console's analysts (needs only DOPPEL_DATABASE_URL)",
		Long:  analystLong,
		Args:  cobra.NoArgs,
	}
	var role string
	add := &cobra.Command{
		Use:   "add NAME --role reviewer|lead|admin",
		Short: "Add a local analyst; the password comes from stdin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.addAnalyst(cmd.Context(), args[0], role)
		},
	}
	add.Flags().StringVar(&role, "role", "", "reviewer, lead or admin (required)")
	_ = add.MarkFlagRequired("role")
	cmd.AddCommand(add,
		&cobra.Command{
			Use:   "list",
			Short: "List the analysts: name, role, how they sign in, whether disabled, last sign-in",
			Args:  cobra.NoArgs,
			RunE:  func(cmd *cobra.Command, _ []string) error { return a.listAnalysts(cmd.Context()) },
		},
		&cobra.Command{
			Use:   "disable NAME",
			Short: "Disable an analyst and end their console sessions at once",
			Args:  cobra.ExactArgs(1),
			RunE:  func(cmd *cobra.Command, args []string) error { return a.disableAnalyst(cmd.Context(), args[0]) },
		},
		&cobra.Command{
			Use:   "enable NAME",
			Short: "Let a disabled analyst sign in again",
			Args:  cobra.ExactArgs(1),
			RunE:  func(cmd *cobra.Command, args []string) error { return a.enableAnalyst(cmd.Context(), args[0]) },
		})
	return cmd
}

// withAnalysts opens the store for an analyst command.
func (a *app) withAnalysts(ctx context.Context, f func(analyst.Store) error) error {
	cfg, err := a.load(a.warnStderr, databaseSettings...)
	if err != nil {
		return err
	}
	pool, store, err := service.OpenStore(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	err = f(store)
	if err != nil && strings.Contains(err.Error(), `relation "analysts" does not exist`) {
		return fmt.Errorf("%w (the schema predates analysts: run doppel migrate up)", err)
	}
	return err
}

func (a *app) addAnalyst(ctx context.Context, rawName, rawRole string) error {
	name, err := analyst.NormalizeName(rawName)
	if err != nil {
		return err
	}
	role, err := analyst.ParseRole(rawRole)
	if err != nil {
		return fmt.Errorf("--role: %w", err)
	}
	password, err := a.readPassword()
	if err != nil {
		return err
	}
	if err := analyst.CheckPassword(name, password); err != nil {
		return fmt.Errorf("%w: choose a longer one (a passphrase of four words will do); nothing was added", err)
	}
	hash, err := analyst.HashPassword(password)
	if err != nil {
		return err
	}
	return a.withAnalysts(ctx, func(s analyst.Store) error {
		if err := s.AddAnalyst(ctx, analyst.Account{Name: name, Role: role, PasswordHash: hash}); err != nil {
			if errors.Is(err, analyst.ErrExists) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return err
		}
		_, err := fmt.Fprintf(a.stdout, "added analyst %s (%s)\n", name, role)
		return err
	})
}

// readPassword reads the new password: asked twice without echo on a terminal, else the first
// line of stdin (a script pipes it in).
func (a *app) readPassword() (string, error) {
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, "Password: ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(a.stderr, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", err
		}
		if string(first) != string(again) {
			return "", errors.New("the two passwords differ; nothing was added")
		}
		return string(first), nil
	}
	line, err := bufio.NewReader(io.LimitReader(a.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (a *app) listAnalysts(ctx context.Context) error {
	return a.withAnalysts(ctx, func(s analyst.Store) error {
		accounts, err := s.Analysts(ctx)
		if err != nil {
			return err
		}
		if len(accounts) == 0 {
			_, err := fmt.Fprintln(a.stdout, "no analysts: add one with doppel analyst add NAME --role reviewer|lead|admin")
			return err
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tSIGNS IN WITH\tSTATUS\tLAST SIGN-IN")
		for _, acct := range accounts {
			method, status, last := "password", "active", "never"
			if !acct.Local() {
				method = "single sign-on"
			}
			if acct.Disabled() {
				status = "disabled " + acct.DisabledAt.UTC().Format(time.DateOnly) + " by " + acct.DisabledBy
			}
			if acct.LastSignInAt != nil {
				last = acct.LastSignInAt.UTC().Format("2006-01-02 15:04 UTC")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", acct.Name, acct.Role, method, status, last)
		}
		return tw.Flush()
	})
}

func (a *app) disableAnalyst(ctx context.Context, rawName string) error {
	name, err := analyst.NormalizeName(rawName)
	if err != nil {
		return err
	}
	return a.withAnalysts(ctx, func(s analyst.Store) error {
		ended, err := s.DisableAnalyst(ctx, name, "command line", time.Now())
		if errors.Is(err, analyst.ErrNotFound) {
			return fmt.Errorf("%s: %w (doppel analyst list shows them)", name, err)
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "disabled analyst %s; ended %d console session(s)\n", name, ended)
		return err
	})
}

func (a *app) enableAnalyst(ctx context.Context, rawName string) error {
	name, err := analyst.NormalizeName(rawName)
	if err != nil {
		return err
	}
	return a.withAnalysts(ctx, func(s analyst.Store) error {
		if err := s.EnableAnalyst(ctx, name); errors.Is(err, analyst.ErrNotFound) {
			return fmt.Errorf("%s: %w (doppel analyst list shows them)", name, err)
		} else if err != nil {
			return err
		}
		_, err := fmt.Fprintf(a.stdout, "enabled analyst %s\n", name)
		return err
	})
}
