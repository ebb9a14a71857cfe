package main

import (
	"flag"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// settingsRead binds every subcommand's settings, as each does at start,
// with a getenv that records what it is asked, and returns every flag and
// every environment variable the binary reads.
func settingsRead(t *testing.T) (flags, vars map[string]bool) {
	t.Helper()
	flags, vars = map[string]bool{}, map[string]bool{}
	getenv := func(k string) string { vars[k] = true; return "" }
	var binders []*binder
	bind := func(name string, f func(b *binder) *commonConfig) {
		b := newBinder(name, getenv, io.Discard, io.Discard)
		common := f(b)
		if _, _, err := common.setup(io.Discard, 0); err != nil { // reads what connecting reads
			t.Fatalf("%s: %v", name, err)
		}
		binders = append(binders, b)
	}
	bind("serve", func(b *binder) *commonConfig { var c serveConfig; c.bind(b); return &c.commonConfig })
	bind("work", func(b *binder) *commonConfig { var c workConfig; c.bind(b); return &c.commonConfig })
	bind("simulate", func(b *binder) *commonConfig { var c simulateConfig; c.bind(b); return &c.commonConfig })
	bind("migrate", func(b *binder) *commonConfig { var c commonConfig; c.bind(b); return &c })
	bind("reconcile", func(b *binder) *commonConfig { var c reconcileCommand; c.bind(b); return &c.commonConfig })
	for _, verb := range accountVerbs() {
		bind("accounts "+verb.name, func(b *binder) *commonConfig {
			var c accountsConfig
			c.bind(b, verb, &accountsArgs{})
			return &c.commonConfig
		})
	}
	for _, b := range binders {
		b.fs.VisitAll(func(f *flag.Flag) { flags["-"+f.Name] = true })
	}
	return flags, vars
}

// documented returns the variables and flags that docs/configuration.md's
// settings table names: backquoted UPPER_CASE names in its first column,
// backquoted -flags in its second.
func documented(t *testing.T) (flags, vars map[string]bool) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(doc), "## Settings")
	table, _, _ = strings.Cut(table, "\n## ")
	flags, vars = map[string]bool{}, map[string]bool{}
	varName, flagName := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`"), regexp.MustCompile("`(-[a-z][a-z-]*)`")
	for line := range strings.Lines(table) {
		cols := strings.Split(line, "|")
		if len(cols) < 4 || !strings.HasPrefix(line, "|") {
			continue
		}
		for _, m := range varName.FindAllStringSubmatch(cols[1], -1) {
			vars[m[1]] = true
		}
		for _, m := range flagName.FindAllStringSubmatch(cols[2], -1) {
			flags[m[1]] = true
		}
	}
	return flags, vars
}

// TestConfigurationIsDocumented: every flag and environment variable any
// subcommand reads is in docs/configuration.md, and everything the table
// names is read.
func TestConfigurationIsDocumented(t *testing.T) {
	readFlags, readVars := settingsRead(t)
	docFlags, docVars := documented(t)
	for _, c := range []struct {
		what      string
		read, doc map[string]bool
	}{{"variable", readVars, docVars}, {"flag", readFlags, docFlags}} {
		for _, name := range slices.Sorted(maps.Keys(c.read)) {
			if !c.doc[name] {
				t.Errorf("the %s %s is read but not in docs/configuration.md", c.what, name)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(c.doc)) {
			if !c.read[name] {
				t.Errorf("docs/configuration.md names the %s %s, which nothing reads", c.what, name)
			}
		}
	}
}
