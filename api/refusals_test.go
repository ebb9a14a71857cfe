package api_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"inbox/api"
)

// TestRefusalsAreDocumented: docs/troubleshooting.md explains every
// refusal code the service can log and count, and no other.
func TestRefusalsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(doc), "## Refused deliveries")
	table, _, _ = strings.Cut(table, "\n## ")
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(table, -1) {
		documented = append(documented, m[1])
	}
	codes := api.Refusals()
	for _, c := range codes {
		if !slices.Contains(documented, c) {
			t.Errorf("refusal %s is not in docs/troubleshooting.md", c)
		}
	}
	for _, d := range documented {
		if !slices.Contains(codes, d) {
			t.Errorf("docs/troubleshooting.md documents %s, which the service never refuses with", d)
		}
	}
	if len(documented) != len(codes) {
		t.Errorf("%d rows for %d codes", len(documented), len(codes))
	}
}
