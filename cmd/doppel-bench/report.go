package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/doppelhq/doppel/internal/clip"
	"github.com/doppelhq/doppel/internal/harness/results"
)

// Targets from the issue.
const (
	targetEventsPerSec   = 12000
	targetNaiveRatio     = 20
	targetVendorPercent  = 95
	targetP99Ms          = 50
	targetFixedP99Ms     = 25
	targetCPUMicros      = 100 // doppel + PostgreSQL per event in (a)
	targetFarmSlowdown   = 5   // a ring of 1,000 among 5,000 events against none
	targetFarmErasureSec = 2   // erasing one member of a face farm of 5,000
	targetPeakRSSMB      = 100
	targetCeilingPercent = 50
	// The harness's own rules for "steady" and "bounded memory" in (b).
	steadySlicePercent = 90
	boundedGrowthMB    = 20
)

// report is everything one run measured; it is written as bench.json.
type report struct {
	StartedAt    time.Time           `json:"startedAt"`
	FinishedAt   time.Time           `json:"finishedAt"`
	Machine      machineInfo         `json:"machine"`
	Options      map[string]string   `json:"options"`
	Population   map[string]int      `json:"population,omitempty"`
	Table        []row               `json:"table"`
	A            *throughputResult   `json:"a,omitempty"`
	B            *vendorResult       `json:"b,omitempty"`
	C            *latencyResult      `json:"c,omitempty"`
	CFixed       *latencyResult      `json:"cFixedRate,omitempty"`
	G            *farmResult         `json:"faceFarm,omitempty"`
	R            *retentionResult    `json:"retentionSweep,omitempty"`
	KafkaCeiling *kafkaCeilingResult `json:"kafkaCeiling,omitempty"`
	PGCeiling    *pgCeilingResult    `json:"postgresCeiling,omitempty"`
	NaiveFast    *naiveResult        `json:"naiveZeroLatency,omitempty"`
	NaiveSlow    *naiveResult        `json:"naiveSlowVendor,omitempty"`
	Errors       []string            `json:"errors,omitempty"`
	// Disturbances name the scenarios during which the broker or the database restarted.
	Disturbances []string `json:"disturbances,omitempty"`
}

func (o options) describe() map[string]string {
	return map[string]string{
		"events": fmt.Sprint(o.events), "warmupEvents": fmt.Sprint(o.warmupEvents), "partitions": fmt.Sprint(o.partitions),
		"workersA": fmt.Sprint(o.workersA), "workersB": fmt.Sprint(o.workersB),
		"ringFraction": fmt.Sprint(o.ringFraction), "seed": fmt.Sprint(o.seed),
		"bLatency": o.bLatency.String(), "bQPS": fmt.Sprint(o.bQPS), "bWarmup": o.bWarmup.String(),
		"bSteady": o.bSteady.String(), "cRate": fmt.Sprint(o.cRate), "cFixedRate": fmt.Sprint(o.cFixedRate), "cDuration": o.cDuration.String(),
		"cSteadyAfter": o.cSteadyAfter.String(), "farmEvents": fmt.Sprint(o.farmEvents), "farmSizes": fmt.Sprint(o.farmSizes),
		"naiveDuration": o.naiveFast.String(), "naiveSlowDuration": o.naiveSlow.String(), "only": o.only,
		"build": o.buildLabel, "doppelEnv": strings.Join(o.doppelEnv, ","),
		"retentionChecks": fmt.Sprint(o.retentionChecks), "retentionRate": fmt.Sprint(o.retentionRate),
		"retentionWindow": o.retentionWindow.String(), "retentionPairs": fmt.Sprint(o.retentionPairs),
	}
}

func describePopulation(p population) map[string]int {
	sizes := map[string]int{"events": len(p.people), "usersInRings": p.inRings(), "rings": len(p.rings)}
	for _, r := range p.rings {
		sizes[fmt.Sprintf("ringsOf%d", len(r))]++
	}
	return sizes
}

// row is one line of the table.
type row struct {
	Scenario string `json:"scenario"`
	Figure   string `json:"figure"`
	Value    string `json:"value"`
	Target   string `json:"target"`
	// Met is "yes", "NO" or "" when the figure has no target.
	Met string `json:"met"`
}

type table []row

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// table builds the rows from what ran; a scenario that did not run or failed says so.
func (r *report) table() table {
	var t table
	add := func(s, f, v, target, m string) { t = append(t, row{s, f, v, target, m}) }
	missing := func(scenario string) string {
		for _, e := range r.Errors {
			if strings.HasPrefix(e, scenario) {
				return "failed: " + oneLine(strings.TrimPrefix(e, scenario+": "), 60)
			}
		}
		return "not run"
	}
	naiveFast := 0.0
	if r.NaiveFast != nil {
		naiveFast = r.NaiveFast.EventsPerSec
	}
	naiveSlow := 0.0
	if r.NaiveSlow != nil {
		naiveSlow = r.NaiveSlow.EventsPerSec
	}
	lower, lowerName := r.lowerCeiling()

	if a := r.A; a != nil && a.EventsPerSec > 0 {
		note := ""
		if !a.Complete {
			note = fmt.Sprintf(", INCOMPLETE: %d of %d", a.Stored, a.Events)
		}
		add("(a)", "events/s end to end, zero-latency vendor",
			fmt.Sprintf("%.0f ev/s (%d events in %.1f s%s)", a.EventsPerSec, a.Stored, a.Seconds, note),
			fmt.Sprintf(">= %d", targetEventsPerSec), met(a.EventsPerSec >= targetEventsPerSec && a.Complete))
		if naiveFast > 0 {
			ratio := a.EventsPerSec / naiveFast
			add("(a)", "ratio to the naive baseline (f, zero latency)", fmt.Sprintf("%.1fx", ratio),
				fmt.Sprintf(">= %dx", targetNaiveRatio), met(ratio >= targetNaiveRatio))
		}
		if lower > 0 {
			pct := 100 * a.EventsPerSec / lower
			add("(a)", "fraction of the lower ceiling (e: "+lowerName+")", fmt.Sprintf("%.1f%%", pct),
				fmt.Sprintf(">= %d%%", targetCeilingPercent), met(pct >= targetCeilingPercent))
		}
		add("(a)", "start-up (process start -> first outcome), alerts, dead letters",
			fmt.Sprintf("%.1f s; %d alerts on topic; %d dead letters", a.StartupSeconds, a.AlertsOnTopic, a.DeadLetters), "", "")
		add("(a)", "CPU cores used during the drain (machine has "+fmt.Sprint(r.Machine.CPUs)+")", formatCPU(a.CPUCores), "", "")
		if len(a.PGActive) > 0 {
			var top []string
			for _, st := range a.PGActive[:min(2, len(a.PGActive))] {
				top = append(top, fmt.Sprintf("%.2f %s", st.Share, oneLine(st.Statement, 48)))
			}
			add("(a)", "PostgreSQL backends busy, by statement (top 2)", strings.Join(top, "; "), "", "")
		}
		if pg := a.PG; pg != nil {
			add("(a)", "PostgreSQL work per event",
				fmt.Sprintf("%.2f transactions, %.2f WAL flushes, %.0f WAL bytes", pg.TransactionsPerEvent, pg.WALSyncsPerEvent, pg.WALBytesPerEvent), "", "")
		}
	} else {
		add("(a)", "events/s end to end, zero-latency vendor", missing("(a)"), fmt.Sprintf(">= %d", targetEventsPerSec), "NO")
	}

	if b := r.B; b != nil && b.WindowSeconds > 0 {
		add("(b)", fmt.Sprintf("vendor QPS achieved (%.0f ms latency, limit %g)", b.LatencyMs, b.LimitQPS),
			fmt.Sprintf("%.1f%% of limit (%.1f billed/s over %.0f s steady)", b.PercentOfLimit, b.BilledPerSec, b.WindowSeconds),
			fmt.Sprintf(">= %d%%", targetVendorPercent), met(b.PercentOfLimit >= targetVendorPercent))
		add("(b)", fmt.Sprintf("steadiness: %s slices of the window", bSlice),
			fmt.Sprintf("%.1f%% .. %.1f%% of limit", b.MinWindowPercent, b.MaxWindowPercent),
			fmt.Sprintf(">= %d%% each", steadySlicePercent), met(b.MinWindowPercent >= steadySlicePercent))
		add("(b)", "vendor calls in flight on average (billed/s x latency)",
			fmt.Sprintf("%.0f, with %d workers (doppel's in-flight gauge: %.0f)", b.InFlight, b.Workers, b.ReportedInFlight), "", "")
		add("(b)", "SERVICE_BUSY answers from the vendor",
			fmt.Sprintf("%d in window, %d in the run; %.1f calls/s sent", b.ServiceBusyInWindow, b.ServiceBusyTotal, b.CallsPerSec), "", "")
		add("(b)", "doppel RSS over the steady window",
			fmt.Sprintf("%.0f -> %.0f MB (max %.0f)", b.RSSStartMB, b.RSSEndMB, b.RSSMaxMB),
			fmt.Sprintf("growth < %d MB", boundedGrowthMB), met(b.RSSEndMB-b.RSSStartMB < boundedGrowthMB))
		if naiveSlow > 0 {
			add("(b)", "events/s, and ratio to the naive baseline (f, same latency)",
				fmt.Sprintf("%.0f ev/s = %.0fx", b.EventsPerSec, b.EventsPerSec/naiveSlow), "", "")
		}
		add("(b)", "CPU cores used during the run", formatCPU(b.CPUCores), "", "")
	} else {
		add("(b)", "vendor QPS achieved", missing("(b)"), fmt.Sprintf(">= %d%%", targetVendorPercent), "NO")
	}

	if c := r.C; c != nil && c.ToAlertOnTopic.N > 0 {
		add("(c)", "latency added, produced -> alert on topic, p50 / p99",
			fmt.Sprintf("%.1f / %.1f ms (%d alerts, %.0f ev/s)", c.ToAlertOnTopic.P50, c.ToAlertOnTopic.P99, c.ToAlertOnTopic.N, c.RateAchieved),
			fmt.Sprintf("p99 <= %d ms", targetP99Ms), met(c.ToAlertOnTopic.P99 <= targetP99Ms && c.Complete))
		add("(c)", "vendor time: configured latency (subtracted) / doppel's mean call (left in)",
			fmt.Sprintf("%.0f ms / %.2f ms", c.VendorLatencySubtractedMs, c.VendorCallMeanMs), "", "")
		add("(c)", "produced -> outcome stored (checked_at), p50 / p99, all events",
			fmt.Sprintf("%.1f / %.1f ms (%d events)", c.ToOutcome.P50, c.ToOutcome.P99, c.ToOutcome.N), "", "")
	} else {
		add("(c)", "latency added, produced -> alert on topic, p50 / p99", missing("(c)"), fmt.Sprintf("p99 <= %d ms", targetP99Ms), "NO")
	}
	if c := r.CFixed; c != nil && c.ToAlertOnTopic.N > 0 {
		add("(c)", fmt.Sprintf("the same at a fixed %.0f events/s, p50 / p99", c.RateTarget),
			fmt.Sprintf("%.1f / %.1f ms (%d alerts, %.0f ev/s)", c.ToAlertOnTopic.P50, c.ToAlertOnTopic.P99, c.ToAlertOnTopic.N, c.RateAchieved),
			fmt.Sprintf("p99 <= %d ms", targetFixedP99Ms), met(c.ToAlertOnTopic.P99 <= targetFixedP99Ms && c.Complete))
	} else if r.Options["cFixedRate"] != "0" {
		add("(c)", "the same at a fixed rate, p50 / p99", missing("(c) fixed"), fmt.Sprintf("p99 <= %d ms", targetFixedP99Ms), "NO")
	}
	r.farmRows(add, missing)
	r.retentionRows(add, missing)
	for _, x := range []struct {
		name string
		us   map[string]float64
	}{{"(a)", microsOf(r.A)}, {"(b)", microsOfB(r.B)}, {"(c)", microsOfC(r.C)}, {"(c) fixed rate", microsOfC(r.CFixed)}} {
		if x.us == nil {
			continue
		}
		together := x.us["doppel"] + x.us["postgres"]
		target, ok := "", ""
		if x.name == "(a)" {
			target, ok = fmt.Sprintf("doppel+postgres <= %d", targetCPUMicros), met(together <= targetCPUMicros)
		}
		add("cpu", "CPU us per event in "+x.name, fmt.Sprintf("doppel+postgres %.0f; %s", together, formatMicros(x.us)), target, ok)
	}

	for _, x := range []struct {
		name string
		mb   float64
		ok   bool
	}{{"(a)", rssOf(r.A), r.A != nil}, {"(b)", rssOfB(r.B), r.B != nil}} {
		if x.ok && x.mb > 0 {
			add("(d)", "peak RSS (VmHWM) of doppel in "+x.name, fmt.Sprintf("%.0f MB", x.mb),
				fmt.Sprintf("<= %d MB", targetPeakRSSMB), met(x.mb <= targetPeakRSSMB))
		} else {
			add("(d)", "peak RSS (VmHWM) of doppel in "+x.name, missing(x.name), fmt.Sprintf("<= %d MB", targetPeakRSSMB), "NO")
		}
	}

	if k := r.KafkaCeiling; k != nil {
		add("(e)", "Kafka ceiling: kafka-go group reader, no processing", fmt.Sprintf("%.0f msgs/s", k.MsgsPerSec), "", "")
	} else {
		add("(e)", "Kafka ceiling", missing("(e) kafka ceiling"), "", "")
	}
	if p := r.PGCeiling; p != nil {
		add("(e)", "PostgreSQL ceiling: COPY of the same rows",
			fmt.Sprintf("%.0f checks/s (+%d links, %d alerts; %d conns)", p.ChecksPerSec, p.Links, p.Alerts, p.Conns), "", "")
	} else {
		add("(e)", "PostgreSQL ceiling", missing("(e) postgres ceiling"), "", "")
	}
	if n := r.NaiveFast; n != nil {
		add("(f)", "naive one-at-a-time, zero vendor latency",
			fmt.Sprintf("%.0f ev/s (p50: vendor %.2f, insert %.2f, commit %.2f ms)", n.EventsPerSec, n.VendorCall.P50, n.InsertP50Ms, n.CommitP50Ms), "", "")
	} else {
		add("(f)", "naive one-at-a-time, zero vendor latency", missing("(f) naive, zero latency"), "", "")
	}
	if n := r.NaiveSlow; n != nil {
		add("(f)", fmt.Sprintf("naive one-at-a-time, %.0f ms vendor latency", n.VendorLatencyMs),
			fmt.Sprintf("%.1f ev/s", n.EventsPerSec), "", "")
	} else {
		add("(f)", "naive one-at-a-time, slow vendor", missing("(f) naive, slow vendor"), "", "")
	}
	worst, where := 0.0, ""
	for _, x := range []struct {
		name string
		cpu  map[string]float64
	}{{"(a)", cpuOfA(r.A)}, {"(b)", cpuOfB(r.B)}, {"(c)", cpuOfC(r.C)}} {
		if v, ok := x.cpu["other"]; ok && (where == "" || v > worst) {
			worst, where = v, x.name
		}
	}
	if len(r.Disturbances) > 0 {
		add("all", "broker or database restarted during a scenario", oneLine(strings.Join(r.Disturbances, "; "), 90), "never", "NO")
	} else {
		add("all", "broker or database restarted during a scenario", "never", "never", "yes")
	}
	if where != "" {
		add("all", "CPU used outside the benchmark's processes, worst scenario",
			fmt.Sprintf("%.2f cores in %s", worst, where), fmt.Sprintf("quiet machine: <= %.2f", maxOtherCores), met(worst <= maxOtherCores))
	}
	return t
}

// maxOtherCores is the harness's rule for a run undisturbed by other programs.
const maxOtherCores = 0.2

func cpuOfA(a *throughputResult) map[string]float64 {
	if a == nil {
		return nil
	}
	return a.CPUCores
}

func cpuOfB(b *vendorResult) map[string]float64 {
	if b == nil {
		return nil
	}
	return b.CPUCores
}

func cpuOfC(c *latencyResult) map[string]float64 {
	if c == nil {
		return nil
	}
	return c.CPUCores
}

func rssOf(a *throughputResult) float64 {
	if a == nil {
		return 0
	}
	return a.PeakRSSMB
}

func rssOfB(b *vendorResult) float64 {
	if b == nil {
		return 0
	}
	return b.PeakRSSMB
}

// lowerCeiling is the smaller of the two ceilings, in events/s.
func (r *report) lowerCeiling() (float64, string) {
	switch {
	case r.KafkaCeiling != nil && r.PGCeiling != nil:
		if r.KafkaCeiling.MsgsPerSec <= r.PGCeiling.ChecksPerSec {
			return r.KafkaCeiling.MsgsPerSec, "Kafka read"
		}
		return r.PGCeiling.ChecksPerSec, "PostgreSQL COPY"
	case r.KafkaCeiling != nil:
		return r.KafkaCeiling.MsgsPerSec, "Kafka read"
	case r.PGCeiling != nil:
		return r.PGCeiling.ChecksPerSec, "PostgreSQL COPY"
	}
	return 0, ""
}

func formatCPU(m map[string]float64) string {
	order := []string{"doppel", "postgres", "kafka", "advance-sim", "bench", "other"}
	var parts []string
	total := 0.0
	for _, k := range order {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, v))
			total += v
		}
	}
	return fmt.Sprintf("%s; total %.2f", strings.Join(parts, ", "), total)
}

// oneLine is s on one line, cut to n bytes for a table cell.
func oneLine(s string, n int) string { return clip.Ellipsis(strings.ReplaceAll(s, "\n", " "), n) }

// text renders the table with aligned columns.
func (t table) text() string {
	header := row{"", "figure", "value", "target", "met?"}
	w := [5]int{}
	all := append(table{header}, t...)
	for _, r := range all {
		for i, c := range []string{r.Scenario, r.Figure, r.Value, r.Target, r.Met} {
			w[i] = max(w[i], len(c))
		}
	}
	var sb strings.Builder
	for i, r := range all {
		fmt.Fprintf(&sb, "%-*s  %-*s  %-*s  %-*s  %s\n", w[0], r.Scenario, w[1], r.Figure, w[2], r.Value, w[3], r.Target, r.Met)
		if i == 0 {
			sb.WriteString(strings.Repeat("-", w[0]+w[1]+w[2]+w[3]+w[4]+8) + "\n")
		}
	}
	return sb.String()
}

func (t table) markdown() string {
	var sb strings.Builder
	sb.WriteString("| | figure | value | target | met? |\n|---|---|---|---|---|\n")
	for _, r := range t {
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s |\n", r.Scenario, r.Figure, r.Value, results.Dash(r.Target), results.Dash(r.Met))
	}
	return sb.String()
}

// write saves bench.json, the chart and the markdown page.
func (r *report) write(outDir, docsPath string, t table) error {
	r.Table = t
	if err := results.WriteJSON(filepath.Join(outDir, "bench.json"), r); err != nil {
		return err
	}
	if err := r.chart(filepath.Join(outDir, "events_per_second.png")); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if docsPath == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(docsPath), 0o755); err != nil {
		return err
	}
	// The chart goes beside the markdown too: bench-results/ is not committed, docs/ is, and
	// docs/performance.md shows it from there.
	if err := r.chart(filepath.Join(filepath.Dir(docsPath), docsChart)); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return results.WriteFile(docsPath, []byte(r.markdown(t)))
}

// ---------------------------------------------------------------- chart

// series is one line of the chart.
type series struct {
	name   string
	points plotter.XYs
}

// ratePoints turns progress samples into events/s over a 1 s sliding window, with time counted from
// the last sample before the first stored outcome.
func ratePoints(samples []sample) plotter.XYs {
	first := -1
	for i, s := range samples {
		if s.Stored > 0 {
			first = i
			break
		}
	}
	if first < 0 {
		return nil
	}
	base := max(0, first-1)
	t0 := samples[base].T
	window := int(time.Second / sampleEvery)
	var pts plotter.XYs
	for i := first; i < len(samples); i++ {
		j := max(base, i-window)
		dt := samples[i].T - samples[j].T
		if dt <= 0 {
			continue
		}
		rate := float64(samples[i].Stored-samples[j].Stored) / dt
		if rate < 1 {
			rate = 1 // the log axis has no zero: an idle moment is drawn at the bottom
		}
		pts = append(pts, plotter.XY{X: samples[i].T - t0, Y: rate})
	}
	return pts
}

func (r *report) series() []series {
	var out []series
	if r.A != nil {
		out = append(out, series{fmt.Sprintf("(a) backlog drain, zero-latency vendor, %d workers", r.A.Workers), ratePoints(r.A.Samples)})
	}
	if r.B != nil {
		out = append(out, series{fmt.Sprintf("(b) %.0f ms vendor, %g QPS limit, %d workers", r.B.LatencyMs, r.B.LimitQPS, r.B.Workers), ratePoints(r.B.Samples)})
	}
	if r.C != nil {
		out = append(out, series{fmt.Sprintf("(c) fixed rate %.0f ev/s (after %d warm-up events)", r.C.RateTarget, cWarmup), ratePoints(r.C.Samples)})
	}
	if r.CFixed != nil {
		out = append(out, series{fmt.Sprintf("(c) fixed rate %.0f ev/s", r.CFixed.RateTarget), ratePoints(r.CFixed.Samples)})
	}
	if r.G != nil {
		for _, run := range r.G.Runs {
			if run.Drain != nil {
				out = append(out, series{fmt.Sprintf("(g) %d events, a face farm of %d", run.Drain.Events, run.RingSize), ratePoints(run.Drain.Samples)})
			}
		}
	}
	if r.NaiveFast != nil {
		out = append(out, series{"(f) naive, zero-latency vendor", ratePoints(r.NaiveFast.Samples)})
	}
	if r.NaiveSlow != nil {
		out = append(out, series{fmt.Sprintf("(f) naive, %.0f ms vendor", r.NaiveSlow.VendorLatencyMs), ratePoints(r.NaiveSlow.Samples)})
	}
	return out
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
	color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff},
	color.RGBA{R: 0xbc, G: 0xbd, B: 0x22, A: 0xff},
	color.RGBA{R: 0x00, G: 0x00, B: 0x00, A: 0xff},
}

func (r *report) chart(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Doppel events/s over time per scenario (%s, %d cores, %s)",
		r.StartedAt.Format("2006-01-02 15:04"), r.Machine.CPUs, "broker + database + simulator + doppel on one machine")
	p.X.Label.Text = "seconds since the scenario's first stored outcome"
	p.Y.Label.Text = "events stored per second (1 s window, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = false
	p.Add(plotter.NewGrid())

	maxY, maxX := 10.0, 1.0
	for i, s := range r.series() {
		if len(s.points) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.points)
		if err != nil {
			return err
		}
		l.LineStyle.Color = palette[i%len(palette)]
		l.LineStyle.Width = vg.Points(1.6)
		p.Add(l)
		p.Legend.Add(s.name, l)
		for _, pt := range s.points {
			maxY, maxX = max(maxY, pt.Y), max(maxX, pt.X)
		}
	}
	for _, ref := range []struct {
		y    float64
		name string
	}{{targetEventsPerSec, fmt.Sprintf("target of (a): %d ev/s", targetEventsPerSec)}} {
		f := plotter.NewFunction(func(float64) float64 { return ref.y })
		f.LineStyle.Color = color.Gray{Y: 0x70}
		f.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		f.Samples = 2
		p.Add(f)
		p.Legend.Add(ref.name, f)
		maxY = max(maxY, ref.y)
	}
	if r.B != nil {
		y := r.B.LimitQPS
		f := plotter.NewFunction(func(float64) float64 { return y })
		f.LineStyle.Color = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xa0}
		f.LineStyle.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		f.Samples = 2
		p.Add(f)
		p.Legend.Add(fmt.Sprintf("vendor limit of (b): %g calls/s", y), f)
	}
	p.X.Min, p.X.Max = 0, maxX
	p.Y.Min, p.Y.Max = 1, math.Pow(10, math.Ceil(math.Log10(maxY*1.2)))
	p.Legend.ThumbnailWidth = vg.Points(24)
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Legend.Padding = vg.Points(1)
	return p.Save(11*vg.Inch, 6*vg.Inch, path)
}

// ---------------------------------------------------------------- markdown

// docsChart is the chart's file name next to the markdown report.
const docsChart = "benchmarks.png"

func (r *report) markdown(t table) string {
	var sb strings.Builder
	sb.WriteString("# Benchmarks\n\n")
	sb.WriteString("Written by `make bench` (cmd/doppel-bench); do not edit by hand, run it again.\n\n")
	fmt.Fprintf(&sb, "Run of %s, %.0f s of wall time, on %d cores (%s), %d MB of memory; PostgreSQL %s, Kafka %s, %s. "+
		"The broker, the database, the vendor simulator, doppel and the benchmark all share this one machine, "+
		"so read the ratios and ceilings beside the absolute figures.\n\n",
		r.StartedAt.Format("2006-01-02 15:04 MST"), r.FinishedAt.Sub(r.StartedAt).Seconds(), r.Machine.CPUs, r.Machine.CPUModel,
		r.Machine.MemTotalMB, r.Machine.PostgreSQL, r.Machine.Kafka, r.Machine.GoVersion)
	fmt.Fprintf(&sb, "Doppel build measured: %s.\n\n", r.Options["build"])
	fmt.Fprintf(&sb, "Load average when the run began: %s. The last rows say whether the infrastructure restarted or other programs used the CPU during the run.\n\n", loadAvg3(r.Machine.LoadAvgAtStart))
	sb.WriteString(t.markdown())
	fmt.Fprintf(&sb, "\n![events/s over time, one line per scenario](%s)\n", docsChart)
	if len(r.Disturbances) > 0 {
		sb.WriteString("\nThe infrastructure was restarted under these scenarios, so their figures are not trustworthy:\n\n")
		for _, d := range r.Disturbances {
			fmt.Fprintf(&sb, "- %s\n", d)
		}
	}
	if len(r.Errors) > 0 {
		sb.WriteString("\nErrors in this run:\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&sb, "- %s\n", e)
		}
	}
	if len(r.Population) > 0 {
		keys := make([]string, 0, len(r.Population))
		for k := range r.Population {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Population[k]))
		}
		fmt.Fprintf(&sb, "\nPopulation of (a): %s.\n", strings.Join(parts, ", "))
	}
	opts := make([]string, 0, len(r.Options))
	for k, v := range r.Options {
		opts = append(opts, k+"="+v)
	}
	sort.Strings(opts)
	fmt.Fprintf(&sb, "\nOptions: %s.\n", strings.Join(opts, ", "))
	sb.WriteString(methodology)
	return sb.String()
}

const methodology = `
The chart above (docs/benchmarks.png, also bench-results/events_per_second.png) shows events/s
over time; every raw figure, including the 250 ms progress samples, is in bench-results/bench.json
(git-ignored).

## How each figure is measured

- Every scenario runs ` + "`bin/doppel serve`" + ` and ` + "`bin/advance-sim`" + ` as child processes, with a fresh database,
  fresh topics (6 partitions) and a fresh consumer group. Events carry the userId, so each costs one
  vendor call (face search). About 30% of users share a face in rings of 2 to 4, so alerts flow.
- (a) The backlog is produced before doppel starts. The rate is the events stored divided by the
  time from the first stored outcome (min checked_at) to the later of the last stored outcome and
  the last alert's Kafka timestamp; the run ends when every event has an outcome and every alert in
  the outbox has been read back from the alert topic. Start-up (migrations, readiness, group join)
  is reported apart.
- (b) The vendor answers after the configured latency and refuses calls above its QPS limit with
  SERVICE_BUSY; doppel's own client limit (DOPPEL_ADVANCE_QPS) is set to the same value. Achieved
  QPS is the face searches the simulator answered SUCCESS (its billing counters, GET /sim/stats)
  per second over the steady window, which starts after the warm-up that follows the first stored
  outcome. "Steady" is the harness's rule: every 5 s slice of the window at 90% of the limit or
  more. "Bounded memory" is: RSS grows less than 20 MB across the window.
- (c) Events are produced at a fixed rate, half of (a)'s, after 200 warm-up events. "Produced" is
  the moment the event is handed to the producer (also its Kafka timestamp); "alert on topic" is
  the moment the benchmark reads the alert back from the alert topic with partition readers, i.e.
  when subscribers can see it. Only events that raise an alert count (about one in five). The
  simulator's configured latency, zero here, is subtracted; its loopback round trip (see the naive
  baseline's vendor p50) stays in the figure, as does the producer's batching (1 ms). bench.json
  also has produced -> the alert's Kafka timestamp (the relay's send) and produced -> checked_at
  for every event.
- (c) is measured in steady state: events produced in the first -c-steady-after (3 s) of the fixed
  rate are left out of the latency figures. It runs twice: at half of (a)'s rate and at a fixed
  1,000 events/s (-c-fixed-rate).
- "CPU us per event" is each process's CPU time (utime + stime from /proc, PostgreSQL's postmaster
  and all its children except the backend serving the benchmark's own progress queries, which
  counts as the benchmark's, Kafka's JVM, advance-sim, doppel) divided by the events stored: from the
  first stored outcome to the end in (a), (b) and (g), from the first fixed-rate event to the last
  alert in (c). It does not depend on how fast the events came, so it compares across runs on a
  busy machine better than events/s does (a loaded machine still inflates it somewhat: cache
  misses and frequency). The target is doppel + PostgreSQL <= 100 us in (a).
- (g) The face farm: -farm-events events (5,000) of which K share one face (a deepfake, a
  printed photo), at random places in the event order, for each K of -farm-sizes (0, 100, 1,000,
  5,000); each run is a backlog drain like (a), with its own database and topics. The simulator's
  face search returns the earlier-completed members, so the event that joins a farm of k names k
  accounts; doppel links the first 100 of each answer pair by pair and joins the rest to the ring
  (docs/performance.md, "What is stored in full and what is capped"), so the farm makes at most 100 links an
  event instead of K(K-1)/2 in all. Each row
  gives the drain time, its ratio to the K = 0 run (the target: at most 5x for K = 1,000) and the
  CPU per event, which shows how the cost grows with the ring's size.
- (h) After the largest farm's drain in (g) (5,000), one member in the middle of the farm is erased
  through the API, as an operator would: POST /v1/erasures (with the legal-hold override: the
  farm's open alerts hold it), then GET /v1/erasures/{id} every 10 ms until "done". The time
  covers the whole job: the removal transaction (the member's checks, links and alerts, their id
  in the other members' match and overflow lists, the ring's summary), advance-sim's clear-data
  call and the subject_erased event acknowledged on the erasures topic. Every (g) run is
  configured for erasure (DOPPEL_PSEUDONYM_KEY), so its drains pay the tombstones' checks, as in
  production.
- (r) The retention sweep under load. A fresh database is filled through the store's own batch
  with -retention-checks (1,000,000) checks of issue 23's shape (10 % in rings, face farms,
  reviews), all completed more than twice DOPPEL_RETENTION (90 days) ago. A doppel without
  retention then takes events at -retention-rate (1,000/s) for -retention-window (40 s); a second
  doppel on the same database, with DOPPEL_RETENTION=2160h, takes a flow of the same shape (same
  seed: the same share of events raising alerts at the same moments) for as long, while its sweep,
  which starts with it, runs (a sweep of a million checks outlasts the window; the table says if
  one did not). The pair runs -retention-pairs (3) times, alternating: the p99 of one run moves by
  tens of percent from run to run on this machine, and alternating keeps the machine's drift out
  of the comparison. The figure is the median over each side's runs of the p99, event produced ->
  outcome stored (steady state, as in (c)); the target is the sweep's median at most 10 % above
  the other. The sweep keeps the rows of people on legal hold (open alerts, confirmed fraud).
- "PostgreSQL work per event" in (a) is from the server's statistics: transactions in the
  scenario's database (pg_stat_database, the harness's own progress queries subtracted) and WAL
  flushes and bytes (pg_stat_wal), divided by the events stored. In (b), "calls in flight" is the
  billed rate times the vendor latency (Little's law): how much of the worker pool was busy.
- "PostgreSQL backends busy, by statement" samples pg_stat_activity every 250 ms: how many of
  doppel's backends were running each statement (by its first words, with its wait event, or CPU),
  on average. bench.json has the top 8 for (a), (b) and (c). For a closer look, -pg-log-slow 10ms
  logs the plan of every slower statement to PostgreSQL's log (auto_explain).
- The harness's own progress queries (count(*) of checks and alerts, every 250 ms) cost
  PostgreSQL a few percent of a core at 50,000 rows; they are in the PostgreSQL CPU figure.
- (d) VmHWM of the doppel process from /proc just before it is stopped.
- (e) Kafka: a kafka-go consumer-group reader with doppel's reader settings fetching the whole (a)
  backlog with no processing and no commits, three times in fresh groups; the median pass counts
  and the group join does not. A pass lasts only tens of milliseconds, so take this ceiling as an
  order of magnitude. PostgreSQL: COPY of
  the same rows (a) stores (checks, their links and alerts) into doppel's schema with its indexes,
  two connections, a commit every 5,000 checks; the rows are built before the clock starts.
  (a) is compared with the lower of the two, in events/s.
- (f) A loop in the benchmark itself: FetchMessage -> face search -> INSERT the check and its
  links in one transaction -> CommitMessages, one event at a time, at zero vendor latency on the
  (a) backlog and at (b)'s latency on the (b) backlog. The clock starts at the first message.
- CPU cores used are from /proc/<pid>/stat (utime + stime) of doppel, every PostgreSQL process, the
  Kafka JVM, the simulator and the benchmark, over the scenario's run; "other" is the rest of the
  machine's busy time from /proc/stat (the kernel, and any program outside the benchmark). Before
  each scenario the harness waits up to 30 s for the machine to be quiet.
`

// loadAvg3 keeps the three load averages of a /proc/loadavg line.
func loadAvg3(s string) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(3, len(f))], " ")
}

// farmRows adds (g)'s rows: one per ring size, and the target on the ring of 1,000.
func (r *report) farmRows(add func(s, f, v, target, m string), missing func(string) string) {
	g := r.G
	if g == nil {
		if r.Options["only"] == "" || strings.Contains(r.Options["only"], "g") {
			add("(g)", "face farm: drain time with one face behind K accounts", missing("(g)"), "", "")
		}
		return
	}
	for _, run := range g.Runs {
		d := run.Drain
		if d == nil {
			continue
		}
		note := ""
		if !d.Complete {
			note = fmt.Sprintf(", INCOMPLETE: %d of %d", d.Stored, d.Events)
		}
		us := d.CPUMicrosPerEvent
		target, ok := "", ""
		if run.RingSize == 1000 {
			target, ok = fmt.Sprintf("<= %dx the no-ring time", targetFarmSlowdown), met(run.Slowdown > 0 && run.Slowdown <= targetFarmSlowdown && d.Complete)
		}
		add("(g)", fmt.Sprintf("ring of %d in %d events (%d links)", run.RingSize, d.Events, run.Links),
			fmt.Sprintf("%.2f s, %.1fx; %.0f ev/s; CPU us/event doppel %.0f, postgres %.0f%s", d.Seconds, run.Slowdown,
				d.EventsPerSec, us["doppel"], us["postgres"], note), target, ok)
	}
	if e := g.Erasure; e != nil {
		value := fmt.Sprintf("%.2f s (removal %.2f s, clear-data and event %.2f s; removed %d checks, %d links, %d alerts)", e.Seconds,
			e.RemovalSeconds, e.FinishSeconds, e.Removed["idv_checks"], e.Removed["duplicate_links"], e.Removed["alerts"])
		if e.Error != "" {
			value = "FAILED: " + e.Error
		}
		add("(h)", fmt.Sprintf("erasing one member of the face farm of %d: POST /v1/erasures -> done", e.RingSize),
			value, fmt.Sprintf("<= %d s", targetFarmErasureSec), met(e.Done && e.Seconds <= targetFarmErasureSec))
	}
}

func microsOf(a *throughputResult) map[string]float64 {
	if a == nil {
		return nil
	}
	return a.CPUMicrosPerEvent
}

func microsOfB(b *vendorResult) map[string]float64 {
	if b == nil {
		return nil
	}
	return b.CPUMicrosPerEvent
}

func microsOfC(c *latencyResult) map[string]float64 {
	if c == nil {
		return nil
	}
	return c.CPUMicrosPerEvent
}

// formatMicros lists the CPU microseconds per event of each benchmark process, in a fixed order.
func formatMicros(us map[string]float64) string {
	var parts []string
	for _, role := range []string{"doppel", "postgres", "kafka", "advance-sim"} {
		if v, ok := us[role]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f", role, v))
		}
	}
	return strings.Join(parts, ", ")
}

// retentionRows adds (r)'s rows: the flow's p99 without and with the sweep, and what it deleted.
func (r *report) retentionRows(add func(s, f, v, target, m string), missing func(string) string) {
	x := r.R
	if x == nil {
		if r.Options["only"] == "" || strings.Contains(r.Options["only"], "r") {
			add("(r)", "retention sweep while events flow", missing("(r)"), "", "")
		}
		return
	}
	if len(x.Without) == 0 || len(x.With) == 0 {
		add("(r)", "retention sweep while events flow", "INCOMPLETE: see the run's errors", "", "")
		return
	}
	w, s := medianP99(x.Without), medianP99(x.With)
	rise := 100 * (s - w) / w
	each := func(runs []*latencyResult) string {
		var p []string
		for _, r := range runs {
			p = append(p, fmt.Sprintf("%.1f", r.ToOutcome.P99))
		}
		return strings.Join(p, ", ")
	}
	add("(r)", fmt.Sprintf("p99 produced -> outcome stored at %.0f ev/s, median of %d alternating runs: without / during the sweep of %s expired checks",
		x.Without[0].RateTarget, len(x.Without), thousandsInt(int64(x.ExpiredChecks))),
		fmt.Sprintf("%.1f / %.1f ms (%+.0f%%; each run: %s / %s)", w, s, rise, each(x.Without), each(x.With)), fmt.Sprintf("<= +%d%%", targetSweepP99Percent),
		met(!x.SweepFinished && w > 0 && rise <= targetSweepP99Percent))
	state := "still running when each run ended"
	if x.SweepFinished {
		state = "FINISHED before a run ended: part of that run had no sweep"
	}
	add("(r)", "the sweep during the run", fmt.Sprintf("%s rows deleted (every table); %s", thousandsInt(int64(x.RowsDeleted)), state), "", "")
}

// thousandsInt writes n with thousands separators.
func thousandsInt(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
