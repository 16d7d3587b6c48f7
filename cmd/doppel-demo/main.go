// Command doppel-demo shows Doppel working end to end on the local infrastructure: it starts two
// vendor regions (ph and th, one advance-sim process each, with their own keys and face databases)
// and `doppel serve` as real processes, seeds each simulator with a small population (rings of 2, 3
// and 4 accounts sharing a face, a failed verification, a returning customer, a ring in th only),
// publishes their "IDV completed" events to Kafka, and prints the rings found per region in
// PostgreSQL and the alerts read back from the alert topic. `make demo` runs it.
//
// With --dev (`make dev`) it then keeps everything running for work by hand: doppel serve on
// DEV_HTTP_ADDR (127.0.0.1:8080) with a fresh API key and callback token, printed with the review
// console's URL, until Ctrl-C stops what it started.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/childproc"
	"github.com/doppelhq/doppel/internal/harness/runenv"
	"github.com/doppelhq/doppel/internal/topic"
)

const (
	topicEvents = "idv.completed"
	topicAlerts = "doppel.alerts"
	topicDLQ    = "idv.completed.dlq"
	// demoDB is the demo's database on the local PostgreSQL; DEMO_DATABASE names another (a test
	// runs the dev stack beside a developer's).
	demoDB    = "doppel_demo"
	accessKey = "demo-access-key"
	secretKey = "demo-secret-key"
)

// demoRegions are the demo's vendor regions; the first is the default.
var demoRegions = []string{"ph", "th"}

func main() {
	dev := flag.Bool("dev", false, "keep advance-sim and doppel serve running after the demo, with an API key, until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := run
	if *dev {
		run = runDev
	}
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "doppel-demo:", err)
		os.Exit(1)
	}
}

// person is one verification in the seeded population.
type person struct {
	UserID, Face, Result string
	// Thin events carry only the vendor's callback body; get-result supplies the userId.
	Thin bool
	// Region is the vendor region the person verified in ("" on a running stack: its one region).
	Region string
	// Person names the human behind the verification when two accounts are one person (the
	// simulator then shows one document for both); "" is the account's own identity.
	Person string
	sig    string
}

func population() []person {
	people := []person{
		// A ring of four: one face, four accounts.
		{UserID: "cust-1004", Face: "face-ring4"}, {UserID: "cust-1011", Face: "face-ring4", Thin: true},
		{UserID: "cust-1019", Face: "face-ring4"}, {UserID: "cust-1027", Face: "face-ring4"},
		// A ring of three, plus a failed verification with the same face (never searched).
		{UserID: "cust-1006", Face: "face-ring3"}, {UserID: "cust-1015", Face: "face-ring3", Thin: true},
		{UserID: "cust-1033", Face: "face-ring3"}, {UserID: "cust-1040", Face: "face-ring3", Result: "FAIL", Thin: true},
		// A ring of two.
		{UserID: "cust-1002", Face: "face-ring2"}, {UserID: "cust-1038", Face: "face-ring2"},
		// A returning customer: the same account verifying twice is not a duplicate.
		{UserID: "cust-1009", Face: "face-returning"}, {UserID: "cust-1009", Face: "face-returning"},
	}
	for i := range 26 {
		id := fmt.Sprintf("cust-%d", 1100+i)
		people = append(people, person{UserID: id, Face: "face-" + id, Thin: i%3 == 0})
	}
	for i := range people {
		if people[i].Result == "" {
			people[i].Result = "PASS"
		}
	}
	return people
}

// Sizes of what make dev adds to the demo's population (devPopulation).
const (
	devRingSize = 5
	devFarmSize = 60
)

// devPopulation is what make dev seeds in ph besides the demo's people, so that the console has
// cases of each kind to work: a ring of devRingSize accounts (high severity with the default
// DOPPEL_RING_HIGH_SEVERITY_SIZE of 5), a face farm of devFarmSize accounts with one face, and one
// person who verified under two accounts with the same document (the ring page suggests "likely the
// same person").
func devPopulation() []person {
	var people []person
	for i := range devRingSize {
		people = append(people, person{UserID: fmt.Sprintf("cust-%d", 3001+i), Face: "face-ring5", Thin: i%2 == 1})
	}
	for i := range devFarmSize {
		people = append(people, person{UserID: fmt.Sprintf("farm-%03d", i+1), Face: "face-farm", Thin: i%4 == 3})
	}
	people = append(people,
		person{UserID: "cust-3101", Face: "face-maria", Person: "maria-santos"},
		person{UserID: "cust-3102", Face: "face-maria", Person: "maria-santos", Thin: true})
	for i := range people {
		people[i].Result, people[i].Region = "PASS", demoRegions[0]
	}
	return people
}

// devCase is one of devPopulation's cases, found by one of its accounts, for make dev's banner.
type devCase struct {
	what, userID string
	ringID       string
	size         int
}

func devCases() []devCase {
	return []devCase{
		{what: fmt.Sprintf("ring of %d (high severity)", devRingSize), userID: "cust-3001"},
		{what: fmt.Sprintf("face farm of %d", devFarmSize), userID: "farm-001"},
		{what: "one person, two accounts, one document", userID: "cust-3101"},
	}
}

// findDevCases fills in each case's ring id and size from the ring index.
func findDevCases(ctx context.Context, dbURL string, cases []devCase) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for i := range cases {
		err := conn.QueryRow(ctx, `SELECT r.ring_id, r.size FROM ring_members m JOIN rings r ON r.ring_key = m.ring_key
WHERE m.user_id = $1`, cases[i].userID).Scan(&cases[i].ringID, &cases[i].size)
		if err != nil {
			return fmt.Errorf("find the ring of %s: %w", cases[i].userID, err)
		}
	}
	return nil
}

func caseLines(base string, cases []devCase) string {
	var b strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&b, "     %-40s %d accounts  %s/console/rings/%s\n", c.what+":", c.size, base, c.ringID)
	}
	return b.String()
}

// regionalPopulation is population() verified in ph, plus th's own verifications: a ring of three
// that only th's face database knows, and cust-2010 with the face of ph's ring of four, whom th's
// search cannot link to it (th knows no other verification with that face).
func regionalPopulation() []person {
	people := population()
	for i := range people {
		people[i].Region = "ph"
	}
	for _, p := range []person{
		{UserID: "cust-2001", Face: "face-th-ring3"}, {UserID: "cust-2002", Face: "face-th-ring3", Thin: true},
		{UserID: "cust-2003", Face: "face-th-ring3"}, {UserID: "cust-2010", Face: "face-ring4"},
		{UserID: "cust-2020", Face: "face-cust-2020"}, {UserID: "cust-2021", Face: "face-cust-2021"},
	} {
		p.Result, p.Region = "PASS", "th"
		people = append(people, p)
	}
	return people
}

func run(ctx context.Context, getenv func(string) string, out io.Writer) error {
	return start(ctx, getenv, out, devSettings{})
}

// devSettings are what `make dev` adds to the demo: a known address, credentials, and no end.
type devSettings struct {
	on                    bool
	httpAddr              string
	apiKey, callbackToken string
	apiKeysSetting        string
	// callbackSig is a seeded verification no event has announced yet, for trying the callback.
	callbackSig string
	// analysts are the console accounts made for the demo: a reviewer and a lead.
	analysts []devAnalyst
	// cases are devPopulation's rings, printed with their console pages.
	cases []devCase
	// Where the running stack is, for .local/dev.env.
	databaseURL, brokers, adminAddr string
	simURLs                         map[string]string
}

// runDev runs the demo and then keeps its processes serving until ctx ends (Ctrl-C).
func runDev(ctx context.Context, getenv func(string) string, out io.Writer) error {
	d := devSettings{on: true, httpAddr: getenv("DEV_HTTP_ADDR"), apiKey: randomHex(32), callbackToken: randomHex(24)}
	if d.httpAddr == "" {
		d.httpAddr = "127.0.0.1:8080"
	}
	sum := sha256.Sum256([]byte(d.apiKey))
	d.apiKeysSetting = "analyst:read+review+replay:" + hex.EncodeToString(sum[:])
	return start(ctx, getenv, out, d)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serveUntilDone writes .local/dev.env (DEV_ENV_FILE names another file), prints how to reach the
// running stack and waits for Ctrl-C or SIGTERM; then it removes the file, whose key is of a stack
// that is gone.
func serveUntilDone(ctx context.Context, out io.Writer, d devSettings, getenv func(string) string) error {
	base := "http://" + d.httpAddr
	if strings.HasPrefix(d.httpAddr, ":") {
		base = "http://localhost" + d.httpAddr
	}
	envFile := getenv("DEV_ENV_FILE")
	if envFile == "" {
		envFile = filepath.Join(".local", "dev.env")
	}
	vars := [][2]string{
		{"DOPPEL_URL", base},
		{"DOPPEL_ADMIN_URL", "http://" + d.adminAddr},
		{"DOPPEL_DATABASE_URL", d.databaseURL},
		{"DOPPEL_KAFKA_BROKERS", d.brokers},
		{"ANALYST_KEY", d.apiKey},
		{"DOPPEL_CALLBACK_TOKEN", d.callbackToken},
		{"DEV_CALLBACK_SIGNATURE_ID", d.callbackSig},
	}
	for _, a := range d.analysts {
		vars = append(vars, [2]string{strings.ToUpper(a.role) + "_NAME", a.name}, [2]string{strings.ToUpper(a.role) + "_PASSWORD", a.password})
	}
	for _, r := range demoRegions {
		vars = append(vars, [2]string{"ADVANCE_SIM_" + strings.ToUpper(r) + "_URL", d.simURLs[r]})
	}
	var env strings.Builder
	env.WriteString("# make dev's running stack: `. .local/dev.env` in another shell. Removed when make dev stops.\n")
	for _, v := range vars {
		fmt.Fprintf(&env, "export %s=%s\n", v[0], shellQuote(v[1]))
	}
	if err := os.WriteFile(envFile, []byte(env.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", envFile, err)
	}
	defer os.Remove(envFile)
	fmt.Fprintf(out, `
== make dev: everything keeps running until Ctrl-C (or SIGTERM)
   Review console:  %s/console/   (sign in as an analyst below, or with the API key)
%s   API:             %s   (OpenAPI at /openapi.json)
   Admin listener:  %s   (/metrics, /readyz with reasons, /debug/pprof/)
   API key:         %s   (name "analyst", scopes read+review+replay)
   Callback token:  %s
   Database:        %s
   Everything above, for another shell:  . %s
   A verification the vendor finished but nobody announced yet (cust-1050, the ring of two's face):
     signatureId %s
   Cases to work (each ring's page in the console):
%s`, base, analystLines(d.analysts), base, "http://"+d.adminAddr, d.apiKey, d.callbackToken, d.databaseURL, envFile, d.callbackSig,
		caseLines(base, d.cases))
	<-ctx.Done()
	fmt.Fprintln(out, "\n== Stopping doppel serve and advance-sim")
	return nil
}

// devAnalyst is a console account made for make dev.
type devAnalyst struct{ role, name, password string }

// addAnalysts makes a reviewer and a lead with fresh passwords, with `doppel analyst add` as an
// operator would (the password on stdin).
func addAnalysts(ctx context.Context, doppelBin, dbURL string) ([]devAnalyst, error) {
	analysts := []devAnalyst{{role: "reviewer", name: "rita"}, {role: "lead", name: "leo"}}
	for i := range analysts {
		a := &analysts[i]
		a.password = "demo-" + randomHex(8)
		cmd := exec.CommandContext(ctx, doppelBin, "analyst", "add", a.name, "--role", a.role)
		cmd.Env = append(os.Environ(), "DOPPEL_DATABASE_URL="+dbURL)
		cmd.Stdin = strings.NewReader(a.password + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("doppel analyst add %s: %w: %s", a.name, err, out)
		}
	}
	return analysts, nil
}

func analystLines(analysts []devAnalyst) string {
	var b strings.Builder
	for _, a := range analysts {
		fmt.Fprintf(&b, "     %-9s %s / %s\n", a.role+":", a.name, a.password)
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell's export line.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func start(ctx context.Context, getenv func(string) string, out io.Writer, d devSettings) error {
	baseDB, brokers := getenv("DOPPEL_DATABASE_URL"), getenv("DOPPEL_KAFKA_BROKERS")
	if baseDB == "" || brokers == "" {
		return errors.New("DOPPEL_DATABASE_URL and DOPPEL_KAFKA_BROKERS must be set (make demo sources .local/env)")
	}
	if simURL := getenv("DEMO_SIM_URL"); simURL != "" {
		// A running stack (docker compose): advance-sim and doppel serve are already up.
		fmt.Fprintf(out, "== Using the running advance-sim at %s and the database and topics doppel serves\n", simURL)
		return demonstrate(ctx, out, baseDB, brokers, map[string]string{"": simURL}, population(), "", "(see the doppel container's logs)")
	}

	root, _ := os.Getwd()
	logDir := filepath.Join(root, ".local", "demo")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	fmt.Fprintln(out, "== Preparing a fresh demo database and topics")
	dbName := getenv("DEMO_DATABASE")
	if dbName == "" {
		dbName = demoDB
	}
	dbURL, err := runenv.FreshDatabase(ctx, baseDB, dbName)
	if err != nil {
		return err
	}
	topics := []string{topicEvents, topicAlerts, topicDLQ}
	for _, r := range demoRegions {
		topics = append(topics, topicEvents+".parked."+r)
	}
	if err := deleteTopics(ctx, brokers, topics...); err != nil {
		return err
	}

	// One vendor account per region: its own simulator process, keys and face database.
	simURLs := map[string]string{}
	regionEnv := []string{"DOPPEL_ADVANCE_REGIONS=" + strings.Join(demoRegions, ","), "DOPPEL_ADVANCE_DEFAULT_REGION=" + demoRegions[0]}
	for _, r := range demoRegions {
		simAddr, err := childproc.FreeAddr()
		if err != nil {
			return err
		}
		simURL := "http://" + simAddr
		access, secret := accessKey+"-"+r, secretKey+"-"+r
		sim, err := startProcess("advance-sim "+r, filepath.Join(logDir, "advance-sim-"+r+".log"), filepath.Join(root, "bin", "advance-sim"), nil,
			"ADVANCE_SIM_ADDR="+simAddr, "ADVANCE_SIM_ACCESS_KEY="+access, "ADVANCE_SIM_SECRET_KEY="+secret,
			"ADVANCE_SIM_LATENCY=40ms")
		if err != nil {
			return err
		}
		defer stop(sim)
		if err := childproc.WaitHTTP(ctx, simURL+"/healthz", 15*time.Second, sim); err != nil {
			return fmt.Errorf("advance-sim %s did not start (see %s): %w", r, sim.LogPath, err)
		}
		fmt.Fprintf(out, "== advance-sim for region %s (its own keys and face database) listens on %s, 40 ms per call\n", r, simURL)
		simURLs[r] = simURL
		R := strings.ToUpper(r)
		regionEnv = append(regionEnv, "DOPPEL_ADVANCE_"+R+"_BASE_URL="+simURL, "DOPPEL_ADVANCE_"+R+"_ACCESS_KEY="+access,
			"DOPPEL_ADVANCE_"+R+"_SECRET_KEY="+secret)
	}

	httpAddr := d.httpAddr
	if httpAddr == "" {
		if httpAddr, err = childproc.FreeAddr(); err != nil {
			return err
		}
	}
	adminAddr, err := childproc.FreeAddr()
	if err != nil {
		return err
	}
	env := append([]string{"DOPPEL_DATABASE_URL=" + dbURL, "DOPPEL_KAFKA_BROKERS=" + brokers, "DOPPEL_KAFKA_GROUP_ID=doppel-demo",
		"DOPPEL_TOPIC_EVENTS=" + topicEvents, "DOPPEL_TOPIC_ALERTS=" + topicAlerts, "DOPPEL_TOPIC_DLQ=" + topicDLQ,
		"DOPPEL_HTTP_ADDR=" + httpAddr, "DOPPEL_ADMIN_ADDR=" + adminAddr, "DOPPEL_LOG_LEVEL=info"}, regionEnv...)
	if d.on {
		env = append(env, "DOPPEL_API_KEYS="+d.apiKeysSetting, "DOPPEL_CALLBACK_TOKEN="+d.callbackToken)
	}
	doppel, err := startProcess("doppel serve", filepath.Join(logDir, "doppel.log"), filepath.Join(root, "bin", "doppel"), []string{"serve"}, env...)
	if err != nil {
		return err
	}
	defer stop(doppel)
	if err := childproc.WaitHTTP(ctx, "http://"+httpAddr+"/readyz", 60*time.Second, doppel); err != nil {
		return fmt.Errorf("doppel serve did not become ready (see %s): %w", doppel.LogPath, err)
	}
	fmt.Fprintf(out, "== doppel serve is ready on http://%s (logs: %s)\n", httpAddr, doppel.LogPath)
	people, more := regionalPopulation(), ""
	if d.on {
		people = append(people, devPopulation()...)
		more = fmt.Sprintf("; for make dev in ph a ring of %d, a face farm of %d and one person under two accounts", devRingSize, devFarmSize)
	}
	if err := demonstrate(ctx, out, dbURL, brokers, simURLs, people, more, doppel.LogPath); err != nil {
		return err
	}
	if d.on {
		// One more verification, seeded but not published, so that the README's callback step
		// has a signatureId the simulator knows: its face is the ring of two's, in the default region.
		simURL := simURLs[demoRegions[0]]
		extra := []person{{UserID: "cust-1050", Face: "face-ring2", Result: "PASS", Region: demoRegions[0]}}
		if err := seed(ctx, simURL, extra, demoRegions[0]); err != nil {
			return err
		}
		d.callbackSig = extra[0].sig
		if d.analysts, err = addAnalysts(ctx, filepath.Join(root, "bin", "doppel"), dbURL); err != nil {
			return err
		}
		d.cases = devCases()
		if err := findDevCases(ctx, dbURL, d.cases); err != nil {
			return err
		}
		d.databaseURL, d.brokers, d.adminAddr, d.simURLs = dbURL, brokers, adminAddr, simURLs
		return serveUntilDone(ctx, out, d, getenv)
	}
	return nil
}

// demonstrate seeds each region's simulator (simURLs by region) with its people, publishes their
// events and prints what came out.
// more describes what the population adds to the demo's ("" nothing).
func demonstrate(ctx context.Context, out io.Writer, dbURL, brokers string, simURLs map[string]string, people []person, more, logHint string) error {
	for region, simURL := range simURLs {
		if err := seed(ctx, simURL, people, region); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "== Seeded %d verifications: in ph rings of 4, 3 and 2 accounts, 1 failed verification, 1 returning customer", len(people))
	if len(simURLs) > 1 {
		fmt.Fprint(out, "; in th a ring of 3, and cust-2010 with the face of ph's ring of 4 (th's database knows no other)")
	}
	fmt.Fprint(out, more)
	fmt.Fprintln(out)

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var before int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM idv_checks`).Scan(&before); err != nil {
		return fmt.Errorf("read idv_checks (has doppel serve migrated the database?): %w", err)
	}

	started := time.Now()
	if err := publish(ctx, brokers, people); err != nil {
		return err
	}
	fmt.Fprintf(out, "== Published %d \"IDV completed\" events to %s\n", len(people), topicEvents)
	if err := waitStored(ctx, conn, before+len(people), 60*time.Second); err != nil {
		return fmt.Errorf("%w (logs: %s)", err, logHint)
	}
	fmt.Fprintf(out, "== All events processed in %s\n\n", time.Since(started).Round(10*time.Millisecond))

	if err := printOutcomes(ctx, conn, out); err != nil {
		return err
	}
	if err := printRings(ctx, conn, out); err != nil {
		return err
	}
	var alertCount int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM alerts`).Scan(&alertCount); err != nil {
		return err
	}
	return printAlerts(ctx, brokers, alertCount, out)
}

// deleteTopics removes the demo's topics so that a second run starts from nothing; doppel serve
// creates them again.
func deleteTopics(ctx context.Context, brokers string, names ...string) error {
	// Its own transport, so the deleted topics' metadata is not cached for the writer below.
	client, closeIdle := topic.NewClient(strings.Split(brokers, ","), 15*time.Second)
	defer closeIdle()
	if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
		return fmt.Errorf("delete demo topics: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		if err == nil {
			gone := true
			for _, t := range meta.Topics {
				if t.Error == nil {
					gone = false
				}
			}
			if gone {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("demo topics were not deleted within 30s")
}

// startProcess starts one of the demo's children with the caller's environment plus env, its
// output in logPath.
func startProcess(name, logPath, bin string, args []string, env ...string) (*childproc.Process, error) {
	p, err := childproc.Start(name, logPath, bin, args, append(os.Environ(), env...))
	if err != nil {
		return nil, fmt.Errorf("%w (run `make build` first)", err)
	}
	return p, nil
}

// stop shuts a child down gracefully; the demo's outcome is already printed, so how it exits
// does not matter.
func stop(p *childproc.Process) { _, _ = p.Stop(20 * time.Second) }

// seed registers region's people in its simulator.
func seed(ctx context.Context, simURL string, people []person, region string) error {
	var sessions []advancesim.Session
	var index []int
	for i, p := range people {
		if p.Region == region {
			sessions = append(sessions, advancesim.Session{UserID: p.UserID, Face: p.Face, OverallResult: p.Result, Person: p.Person})
			index = append(index, i)
		}
	}
	sigs, err := advancesim.NewControl(simURL).AddSessions(ctx, sessions)
	if err != nil {
		return err
	}
	for j, i := range index {
		people[i].sig = sigs[j]
	}
	return nil
}

func publish(ctx context.Context, brokers string, people []person) error {
	w := topic.NewWriter(strings.Split(brokers, ","), topicEvents, topic.WriterConfig{BatchTimeout: 5 * time.Millisecond})
	defer w.Close()
	msgs := make([]kafka.Message, len(people))
	for i, p := range people {
		ev := duplicate.Event{SignatureID: p.sig, Type: duplicate.EventTypeCompleted}
		if !p.Thin {
			now := time.Now().UTC()
			ev.UserID, ev.OccurredAt, ev.EventID = p.UserID, &now, fmt.Sprintf("demo-%03d", i)
		}
		// A region in the event's JSON (any case), or, as a producer that cannot change the body
		// would, in the Kafka header region.
		var headers []kafka.Header
		if i%2 == 0 {
			ev.Region = strings.ToUpper(p.Region)
		} else if p.Region != "" {
			headers = []kafka.Header{{Key: "region", Value: []byte(p.Region)}}
		}
		value, _ := json.Marshal(ev)
		msgs[i] = kafka.Message{Key: []byte(p.sig), Value: value, Headers: headers}
	}
	return w.WriteMessages(ctx, msgs...)
}

// waitStored waits until every event has a stored outcome and every alert is published.
func waitStored(ctx context.Context, conn *pgx.Conn, events int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var checks, pending int
		err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM idv_checks),
			(SELECT count(*) FROM alerts WHERE published_at IS NULL)`).Scan(&checks, &pending)
		if err == nil && checks >= events && pending == 0 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("not every event was processed within the time allowed")
}

func printOutcomes(ctx context.Context, conn *pgx.Conn, out io.Writer) error {
	rows, err := conn.Query(ctx, `SELECT region, outcome, count(*) FROM idv_checks GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Outcomes stored in idv_checks, by region:")
	var region, outcome string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&region, &outcome, &n}, func() error {
		fmt.Fprintf(out, "  %-8s %-17s %d\n", region, outcome, n)
		return nil
	})
	fmt.Fprintln(out)
	return err
}

type link struct {
	low, high, sig string
	regions        []string
}

// printRings prints, for each region, the rings its face searches found.
func printRings(ctx context.Context, conn *pgx.Conn, out io.Writer) error {
	rows, err := conn.Query(ctx, `SELECT user_id_low, user_id_high, first_signature_id, regions FROM duplicate_links ORDER BY 1, 2`)
	if err != nil {
		return err
	}
	links, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (link, error) {
		var l link
		return l, r.Scan(&l.low, &l.high, &l.sig, &l.regions)
	})
	if err != nil {
		return err
	}
	byRegion := map[string][]link{}
	for _, l := range links {
		for _, r := range l.regions {
			byRegion[r] = append(byRegion[r], l)
		}
	}
	regions := make([]string, 0, len(byRegion))
	for r := range byRegion {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		printRegionRings(out, r, byRegion[r])
	}
	return nil
}

// maxRingPrinted is the largest ring whose members and links the demo lists; a larger one (make
// dev's face farm) is one line.
const maxRingPrinted = 8

// printRegionRings groups one region's links into connected components: each is a ring of
// accounts that share a face.
func printRegionRings(out io.Writer, region string, links []link) {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if parent[x] == "" || parent[x] == x {
			parent[x] = x
			return x
		}
		parent[x] = find(parent[x])
		return parent[x]
	}
	for _, l := range links {
		parent[find(l.low)] = find(l.high)
	}
	rings := map[string][]string{}
	for user := range parent {
		rings[find(user)] = append(rings[find(user)], user)
	}
	var list [][]string
	for _, members := range rings {
		sort.Strings(members)
		list = append(list, members)
	}
	sort.Slice(list, func(i, j int) bool {
		if len(list[i]) != len(list[j]) {
			return len(list[i]) > len(list[j])
		}
		return list[i][0] < list[j][0]
	})
	fmt.Fprintf(out, "Duplicate-account rings found in region %s (%d links in duplicate_links):\n", region, len(links))
	for i, members := range list {
		if len(members) > maxRingPrinted {
			fmt.Fprintf(out, "  ring %d: %d accounts share one face: %s … %s (links not listed)\n", i+1, len(members), members[0], members[len(members)-1])
			continue
		}
		fmt.Fprintf(out, "  ring %d: %d accounts share one face: %s\n", i+1, len(members), strings.Join(members, ", "))
		for _, l := range links {
			if slices.Contains(members, l.low) {
				fmt.Fprintf(out, "      %s <-> %s   (first seen by signature %s)\n", l.low, l.high, l.sig)
			}
		}
	}
	fmt.Fprintln(out)
}

// userList prints ids as [a,b,c], or a long list (a face farm's) as its first and last and a count.
func userList(ids []string) string {
	if len(ids) > 4 {
		return fmt.Sprintf("[%s,…,%s (%d)]", ids[0], ids[len(ids)-1], len(ids))
	}
	return "[" + strings.Join(ids, ",") + "]"
}

// maxAlertsPrinted bounds the alerts the demo lists (make dev's face farm alone raises 59).
const maxAlertsPrinted = 12

func printAlerts(ctx context.Context, brokers string, want int, out io.Writer) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: strings.Split(brokers, ","), GroupID: fmt.Sprintf("demo-reader-%d", time.Now().UnixNano()),
		Topic: topicAlerts, StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	readCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fmt.Fprintf(out, "Alerts read back from the %s topic (%d expected):\n", topicAlerts, want)
	var first []byte
	for i := 0; i < want; i++ {
		m, err := r.ReadMessage(readCtx)
		if err != nil {
			return fmt.Errorf("read alert %d of %d: %w", i+1, want, err)
		}
		if first == nil {
			first = m.Value
		}
		var a duplicate.Alert
		if err := json.Unmarshal(m.Value, &a); err != nil {
			return err
		}
		if i >= maxAlertsPrinted {
			continue
		}
		fmt.Fprintf(out, "  alert %s  region %-3s user %-9s matched %-32s new %-32s %s (size %d, %s)\n", a.AlertID[:8], a.Region,
			a.UserID, userList(a.MatchedUserIDs), userList(a.NewMatchedUserIDs), a.RingID, a.RingSize, a.Severity)
	}
	if want > maxAlertsPrinted {
		fmt.Fprintf(out, "  … and %d more (GET /v1/alerts, or the console's queue)\n", want-maxAlertsPrinted)
	}
	var pretty bytes.Buffer
	if first != nil && json.Indent(&pretty, first, "  ", "  ") == nil {
		fmt.Fprintf(out, "\nThe first alert as subscribers receive it:\n  %s\n", pretty.String())
	}
	return nil
}
