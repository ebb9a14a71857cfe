package metrics_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"inbox/metrics"
)

// exported returns the name of every series family the service exports,
// histograms by their base name, after one observation of each labelled
// metric (a vector with no child exports nothing).
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	stat := func() metrics.PoolStat { return metrics.PoolStat{Max: 16} }
	count := func(context.Context) (map[string]int64, error) { return map[string]int64{"available": 1}, nil }
	control := func(context.Context) (metrics.ForwardingControl, error) { return metrics.ForwardingControl{}, nil }
	if err := m.Register(metrics.NewPoolCollector(stat), metrics.NewJobCollector(count, time.Second),
		metrics.NewForwardingCollector(control, time.Second),
		metrics.NewDestinationCollector(func(context.Context) ([]metrics.DestinationState, error) {
			return []metrics.DestinationState{{Name: "orders"}}, nil
		}, time.Second),
		metrics.NewUnroutedCollector(func(context.Context) (int64, error) { return 0, nil }, time.Second),
		metrics.NewMediaCollector(func(context.Context) (int64, time.Time, error) { return 0, time.Now(), nil }, time.Second)); err != nil {
		t.Fatal(err)
	}
	m.HTTPRequest("/twilio/messages", 200, time.Millisecond)
	m.Delivery(metrics.KindMessage, metrics.ResultRefused, "signature_mismatch")
	m.Batch(4, time.Millisecond)
	m.BatchRetried()
	m.Attempt(metrics.DefaultDestination, metrics.KindMessage, metrics.OutcomeSuccess, time.Millisecond, time.Second)
	m.RetentionDeleted("messages", 1)
	m.AccountLookup()
	m.RegisterAccounts(func() (int, int, int) { return 1, 0, 0 })
	m.BuildInfo("v0", "abc", "go1")
	m.ReconcileSucceeded("AC0", time.Now())
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	return names
}

// metricName matches what looks like a metric of the service, the Go
// runtime or the process in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:inbox|go|process)_[a-z0-9_]+\b`)

// named returns the metric names text uses, with a histogram's _bucket,
// _sum and _count mapped to its base name when that is what is exported.
func named(text string, exported map[string]bool) []string {
	var out []string
	for _, n := range metricName.FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && exported[base] && !exported[n] {
				n = base
			}
		}
		out = append(out, n)
	}
	return out
}

// TestDeployFilesNameOnlyExportedMetrics: the Grafana dashboard and the
// alert rules in deploy/ name only metrics the service exports, so a
// renamed metric cannot leave a panel empty or an alert silent.
func TestDeployFilesNameOnlyExportedMetrics(t *testing.T) {
	t.Parallel()
	have := exported(t)

	raw, err := os.ReadFile("../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	exprs := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			exprs++
			names := named(target.Expr, have)
			if len(names) == 0 {
				t.Errorf("panel %q: %q names no metric", p.Title, target.Expr)
			}
			for _, n := range names {
				if !have[n] {
					t.Errorf("panel %q names %s, which the service does not export", p.Title, n)
				}
			}
		}
	}

	rules, err := os.ReadFile("../deploy/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var alerts int
	for line := range strings.Lines(string(rules)) {
		if strings.Contains(line, "- alert:") {
			alerts++
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, n := range named(line, have) {
			if !have[n] {
				t.Errorf("alerts.yml names %s, which the service does not export: %s", n, strings.TrimSpace(line))
			}
		}
	}
	if exprs < 10 || alerts < 4 {
		t.Fatalf("read %d dashboard expressions and %d alerts: the files were not parsed as expected", exprs, alerts)
	}
	// And the check itself can fail.
	if n := named("rate(inbox_deliverys_total[5m])", have); have[n[0]] {
		t.Fatal("a misspelt metric passed the check")
	}
}
