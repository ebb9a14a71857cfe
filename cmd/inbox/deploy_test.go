package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitVerifies: deploy/inbox@.service, with ExecStart pointed
// at the built binary, passes `systemd-analyze verify` without a warning,
// as both inbox@serve and inbox@work. Skipped where systemd-analyze is not
// installed.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit is not checked here")
	}
	t.Parallel()
	bin := buildInbox(t)
	unit, err := os.ReadFile("../../deploy/inbox@.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/inbox %i") {
		t.Fatal("deploy/inbox@.service does not start /usr/local/bin/inbox %i")
	}
	dir := t.TempDir()
	for _, cmd := range []string{"serve", "work"} {
		path := filepath.Join(dir, "inbox@"+cmd+".service")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/inbox", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(t.Context(), analyze, "verify", path).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("systemd-analyze verify inbox@%s.service: %v\n%s", cmd, err, out)
		}
	}
}
