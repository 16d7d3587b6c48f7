// Command advance-sim serves the ADVANCE.AI simulator (package advancesim) over HTTP, so that
// Doppel, its tests and its benchmark can run without the paid vendor.
//
// Every flag falls back to an environment variable:
//
//	-addr           ADVANCE_SIM_ADDR           listen address (127.0.0.1:8090)
//	-access-key     ADVANCE_SIM_ACCESS_KEY     the account's access key (sim-access-key)
//	-secret-key     ADVANCE_SIM_SECRET_KEY     the account's secret key (sim-secret-key)
//	-latency        ADVANCE_SIM_LATENCY        added to face-search and get-result (0s)
//	-error-rate     ADVANCE_SIM_ERROR_RATE     fraction answered ERROR (0)
//	-qps            ADVANCE_SIM_QPS            calls per second before SERVICE_BUSY (0 = unlimited)
//	-busy-http429   ADVANCE_SIM_BUSY_HTTP429   send SERVICE_BUSY as HTTP 429 (false)
//	-new-spelling   ADVANCE_SIM_NEW_SPELLING   answer similarFaceUserIds, not simliarFaceUserIds (false)
//	-sessions-file  ADVANCE_SIM_SESSIONS_FILE  JSON array of sessions to seed at start
//	-seed           ADVANCE_SIM_SEED           seed of the random faults (0)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/doppelhq/doppel/internal/harness/advancesim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "advance-sim:", err)
		os.Exit(1)
	}
}

// options are the settings of one run, from flags over environment over defaults.
type options struct {
	addr         string
	sim          advancesim.Config
	sessionsFile string
}

// run serves the simulator until ctx ends, then shuts down gracefully. Logs go to stdout, usage
// and flag errors to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	if err := opts.sim.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stdout, nil))

	sim := advancesim.New(opts.sim)
	seeded := 0
	if opts.sessionsFile != "" {
		f, err := os.Open(opts.sessionsFile)
		if err != nil {
			return fmt.Errorf("ADVANCE_SIM_SESSIONS_FILE: %w", err)
		}
		seeded, err = sim.LoadSessions(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("ADVANCE_SIM_SESSIONS_FILE %s: %w", opts.sessionsFile, err)
		}
	}

	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return fmt.Errorf("listen on %s (ADVANCE_SIM_ADDR): %w", opts.addr, err)
	}
	srv := &http.Server{
		Handler:           sim.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Info("advance-sim listening",
		"addr", ln.Addr().String(),
		"sessions", seeded,
		"latency", opts.sim.Latency.String(),
		"error_rate", opts.sim.ErrorRate,
		"qps", opts.sim.QPS,
		"busy_http429", opts.sim.BusyAsHTTP429,
		"new_spelling", opts.sim.NewSpelling,
	)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("advance-sim shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// parseOptions reads the environment first, so that a bad variable is named, then the flags.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	env := envReader{getenv: getenv}
	o := options{
		addr: env.str("ADVANCE_SIM_ADDR", "127.0.0.1:8090"),
		sim: advancesim.Config{
			AccessKey:     env.str("ADVANCE_SIM_ACCESS_KEY", "sim-access-key"),
			SecretKey:     env.str("ADVANCE_SIM_SECRET_KEY", "sim-secret-key"),
			Latency:       env.duration("ADVANCE_SIM_LATENCY"),
			ErrorRate:     env.float("ADVANCE_SIM_ERROR_RATE"),
			QPS:           env.float("ADVANCE_SIM_QPS"),
			BusyAsHTTP429: env.boolean("ADVANCE_SIM_BUSY_HTTP429"),
			NewSpelling:   env.boolean("ADVANCE_SIM_NEW_SPELLING"),
			Seed:          env.int("ADVANCE_SIM_SEED"),
		},
		sessionsFile: env.str("ADVANCE_SIM_SESSIONS_FILE", ""),
	}
	if env.err != nil {
		return options{}, env.err
	}

	fs := flag.NewFlagSet("advance-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", o.addr, "listen address (ADVANCE_SIM_ADDR)")
	fs.Var(secretFlag{&o.sim.AccessKey}, "access-key", "access key clients use (ADVANCE_SIM_ACCESS_KEY, else sim-access-key)")
	fs.Var(secretFlag{&o.sim.SecretKey}, "secret-key", "secret key clients use (ADVANCE_SIM_SECRET_KEY, else sim-secret-key)")
	fs.DurationVar(&o.sim.Latency, "latency", o.sim.Latency, "latency added to face-search and get-result (ADVANCE_SIM_LATENCY)")
	fs.Float64Var(&o.sim.ErrorRate, "error-rate", o.sim.ErrorRate, "fraction of calls answered ERROR, 0..1 (ADVANCE_SIM_ERROR_RATE)")
	fs.Float64Var(&o.sim.QPS, "qps", o.sim.QPS, "calls per second before SERVICE_BUSY, 0 = unlimited (ADVANCE_SIM_QPS)")
	fs.BoolVar(&o.sim.BusyAsHTTP429, "busy-http429", o.sim.BusyAsHTTP429, "send SERVICE_BUSY with HTTP 429 (ADVANCE_SIM_BUSY_HTTP429)")
	fs.BoolVar(&o.sim.NewSpelling, "new-spelling", o.sim.NewSpelling, "answer similarFaceUserIds instead of simliarFaceUserIds (ADVANCE_SIM_NEW_SPELLING)")
	fs.StringVar(&o.sessionsFile, "sessions-file", o.sessionsFile, "JSON array of sessions to seed at start (ADVANCE_SIM_SESSIONS_FILE)")
	fs.Int64Var(&o.sim.Seed, "seed", o.sim.Seed, "seed of the random faults (ADVANCE_SIM_SEED)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.sim.Latency < 0 {
		return options{}, errors.New("ADVANCE_SIM_LATENCY (-latency) must not be negative")
	}
	if !(o.sim.ErrorRate >= 0 && o.sim.ErrorRate <= 1) {
		return options{}, errors.New("ADVANCE_SIM_ERROR_RATE (-error-rate) must be between 0 and 1")
	}
	if !(o.sim.QPS >= 0) {
		return options{}, errors.New("ADVANCE_SIM_QPS (-qps) must be 0 (unlimited) or positive")
	}
	return o, nil
}

// secretFlag is a string flag whose value never appears in the usage text, which would otherwise
// print the key taken from the environment as the flag's default.
type secretFlag struct{ v *string }

func (f secretFlag) String() string { return "" }

func (f secretFlag) Set(v string) error {
	*f.v = v
	return nil
}

// envReader parses environment variables, keeping the first error, which names the variable
// but never its value (it may be a secret).
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) str(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envReader) fail(name, want string) {
	if e.err == nil {
		e.err = fmt.Errorf("%s: cannot parse: want %s", name, want)
	}
}

func (e *envReader) duration(name string) time.Duration {
	v := e.getenv(name)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail(name, "a duration such as 50ms")
	}
	return d
}

func (e *envReader) float(name string) float64 {
	v := e.getenv(name)
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.fail(name, "a number such as 0.05")
	}
	return f
}

func (e *envReader) boolean(name string) bool {
	v := e.getenv(name)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, "true or false")
	}
	return b
}

func (e *envReader) int(name string) int64 {
	v := e.getenv(name)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.fail(name, "an integer")
	}
	return n
}
