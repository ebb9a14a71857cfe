package layout_test

import (
	"encoding/json"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// below says which of the project's packages each may import: the layers
// under it. A new package must be added here, where its place is decided.
// cmd/inbox, bench and scripts wire everything and are not listed.
func below() map[string][]string {
	leaf := []string{}
	return map[string][]string{
		"message": leaf, "twilio": leaf, "webhook": leaf, "job": leaf, "keyring": leaf, "metrics": {"tally"}, "tally": leaf, "destination": leaf,
		"internal/buildinfo": leaf, "internal/statuswriter": leaf, "internal/poll": leaf, "internal/logtest": leaf,
		"internal/pgdial": leaf, "internal/layout": leaf, "internal/clip": leaf, "internal/lifecycle": leaf, "internal/text": leaf,
		"db":                   {"message"},
		"db/jobdb":             leaf,
		"sql/schema":           leaf,
		"internal/dbconfig":    {"internal/pgdial"},
		"internal/dbtest":      {"sql/schema"},
		"store":                {"db", "destination", "internal/clip", "job", "message", "metrics", "tally"},
		"overview":             {"tally"},
		"simulate":             {"message", "twilio", "webhook", "internal/clip"},
		"internal/fixture":     {"message", "simulate"},
		"internal/teamapp":     {"message"},
		"account":              {"internal/clip", "internal/text", "keyring", "metrics", "store", "twilio", "twilioapi"},
		"twilioapi":            {"internal/clip"},
		"routing":              {"destination", "internal/clip", "internal/text", "job", "keyring", "queue", "store", "twilio", "webhook"},
		"internal/twiliotest":  leaf,
		"internal/pgcluster":   leaf,
		"internal/brokertest":  {"internal/poll"},
		"queue":                {"db/jobdb", "job", "store"},
		"destination/httpdest": {"destination", "message", "webhook"},
		"destination/natsdest": {"destination", "webhook"},
		"destination/amqpdest": {"destination", "webhook"},
		"destination/kinds":    {"destination", "destination/amqpdest", "destination/httpdest", "destination/natsdest"},
		"dispatch":             {"destination", "job", "message", "metrics", "queue", "store"},
		"control":              {"destination", "internal/text", "job", "message", "metrics", "queue", "store"},
		"story":                {"destination", "job", "message", "store"},
		"retention":            {"job", "metrics", "queue"},
		"reconcile":            {"internal/clip", "job", "message", "metrics", "queue", "store", "twilio", "twilioapi"},
		"media":                {"account", "internal/clip", "job", "message", "metrics", "queue", "store", "twilioapi"},
		"api":                  {"account", "internal/clip", "internal/statuswriter", "message", "metrics", "store", "twilio"},
		"admin": {"account", "control", "destination", "internal/clip", "internal/statuswriter", "job", "media", "message", "metrics",
			"overview", "routing", "store", "story", "tally", "twilio"},
		"internal/workertest": {"control", "destination", "destination/httpdest", "dispatch", "internal/fixture", "internal/logtest",
			"internal/teamapp", "message", "queue", "store"},
	}
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func packages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "inbox/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var all []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		all = append(all, p)
	}
	return all
}

// TestEachPackageImportsOnlyTheLayersBelowIt: no upward arrow, no cycle
// through a side door, and sqlc's db and pgx stay behind the store.
func TestEachPackageImportsOnlyTheLayersBelowIt(t *testing.T) {
	allowed := below()
	for _, p := range packages(t) {
		name := strings.TrimPrefix(p.ImportPath, "inbox/")
		wiring := name == "cmd/inbox" || strings.HasPrefix(name, "bench") || strings.HasPrefix(name, "scripts/")
		ok, listed := allowed[name]
		if !listed && !wiring {
			t.Errorf("%s is not in this test's layout: decide which layers it may import and add it", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, "inbox/")
			switch {
			case ours && dep == "db" && name != "store" && !strings.HasPrefix(name, "bench"):
				t.Errorf("%s imports inbox/db: only the store may know sqlc's code", p.ImportPath)
			case ours && dep == "db/jobdb" && name != "queue":
				t.Errorf("%s imports inbox/db/jobdb: only the queue may know River's table", p.ImportPath)
			case strings.HasPrefix(imp, "github.com/riverqueue/") && name != "queue" && name != "sql/schema" && !wiring:
				t.Errorf("%s imports %s: River is the queue's alone", p.ImportPath, imp)
			case ours && !wiring && !slices.Contains(ok, dep):
				t.Errorf("%s imports %s, which is not below it", p.ImportPath, imp)
			case strings.HasPrefix(imp, "github.com/jackc/pgx") && !pgxAllowed(name):
				t.Errorf("%s imports %s: database access goes through the store", p.ImportPath, imp)
			}
		}
	}
}

// pgxAllowed: the store and sqlc's code, the internal helpers that dial and
// configure connections, the migrations, the queue (River's driver and
// River's table), and the wiring that creates the pool.
func pgxAllowed(name string) bool {
	switch {
	case name == "store", name == "db", name == "db/jobdb", name == "queue", name == "sql/schema", name == "cmd/inbox":
		return true
	case strings.HasPrefix(name, "internal/"), strings.HasPrefix(name, "bench"), strings.HasPrefix(name, "scripts/"):
		return true
	}
	return false
}

// TestReadmeLayoutMatchesTheTree: every folder of the README's layout table
// exists, and every package (and every top-level folder) is in it.
func TestReadmeLayoutMatchesTheTree(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(readme), "## Layout")
	table, _, _ = strings.Cut(table, "\n## ")
	listed := map[string]bool{}
	for line := range strings.Lines(table) {
		cols := strings.Split(line, "|")
		if len(cols) < 3 {
			continue
		}
		for _, m := range regexp.MustCompile("`([a-z][a-z/]*)/`").FindAllStringSubmatch(cols[1], -1) {
			listed[m[1]] = true
		}
	}
	for dir := range listed {
		if fi, err := os.Stat("../../" + dir); err != nil || !fi.IsDir() {
			t.Errorf("the README lists %s/, which is not a folder", dir)
		}
	}
	covered := func(dir string) bool {
		for d := dir; d != "." && d != ""; d = filepath.Dir(d) {
			if listed[d] {
				return true
			}
		}
		return false
	}
	for _, p := range packages(t) {
		if name := strings.TrimPrefix(p.ImportPath, "inbox/"); !covered(name) {
			t.Errorf("package %s is not in the README's layout table", p.ImportPath)
		}
	}
	top, err := os.ReadDir("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range top {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !listed[e.Name()] && !slices.ContainsFunc(slices.Collect(maps.Keys(listed)), func(d string) bool { return strings.HasPrefix(d, e.Name()+"/") }) {
			t.Errorf("the folder %s/ is not in the README's layout table", e.Name())
		}
	}
}
