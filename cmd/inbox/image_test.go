package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/internal/logtest"
	"inbox/internal/poll"
	"inbox/internal/teamapp"
	"inbox/simulate"
)

// buildah runs buildah on this machine's image store (vfs: no daemon, no
// kernel overlay needed) and returns its standard output.
func buildah(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(t.Context(), "buildah", append([]string{"--storage-driver", "vfs"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

// TestImageRunsAsUsersRunIt builds the image with scripts/image and runs
// it as a deployment would: `inbox migrate up`, then `serve` (the image's
// own command) against the test PostgreSQL, as the image's non-root user;
// /readyz answers 200, a signed delivery is stored and forwarded.
func TestImageRunsAsUsersRunIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a static binary and an image (about a minute)")
	}
	if _, err := exec.LookPath("buildah"); err != nil {
		msg := "NO IMAGE TOOL: the image test needs buildah (apt-get install -y buildah); scripts/test installs it where it can"
		if os.Getenv("INBOX_REQUIRE_IMAGE") != "" {
			t.Fatal(msg)
		}
		t.Skip("\n\n*** " + msg + " ***\n")
	}
	t.Parallel()
	image := fmt.Sprintf("localhost/inbox-test:%d", os.Getpid())
	build := exec.CommandContext(t.Context(), "../../scripts/image")
	build.Env = append(os.Environ(), "IMAGE="+image, "VERSION=v0.0.0-imagetest")
	var buildLog bytes.Buffer
	build.Stderr = &buildLog
	if out, err := build.Output(); err != nil || strings.TrimSpace(string(out)) != image {
		t.Fatalf("scripts/image: %q, %v\n%s", out, err, buildLog.String())
	}
	t.Cleanup(func() { exec.Command("buildah", "--storage-driver", "vfs", "rmi", "-f", image).Run() })
	t.Logf("built %s, %s", image, buildah(t, "images", "--format", "{{.Size}}", image))

	config := buildah(t, "inspect", "--type", "image", "--format", "{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}", image)
	if config != "65532:65532 [/inbox] [serve]" {
		t.Fatalf("image config: %q, want user 65532:65532, entrypoint /inbox, command serve", config)
	}
	ctr := buildah(t, "from", "--name", fmt.Sprintf("inbox-test-%d", os.Getpid()), image)
	t.Cleanup(func() { exec.Command("buildah", "--storage-driver", "vfs", "rm", ctr).Run() })
	root := buildah(t, "mount", ctr)
	for _, f := range []string{"inbox", "etc/ssl/certs/ca-certificates.crt", "etc/passwd"} {
		if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Size() == 0 {
			t.Fatalf("the image lacks /%s: %v", f, err)
		}
	}

	databaseURL := dbtest.EmptyURL(t)
	app := teamapp.New(t, teamapp.Options{})
	env := []string{"DATABASE_URL=" + databaseURL, "LOG_FORMAT=json"}
	runIn := func(args ...string) *exec.Cmd {
		a := []string{"--storage-driver", "vfs", "run", "--isolation", "chroot"}
		for _, e := range env {
			a = append(a, "--env", e)
		}
		cmd := exec.Command("buildah", append(append(a, ctr, "--"), args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}
	if out, err := runIn("/inbox", "migrate", "up").CombinedOutput(); err != nil {
		t.Fatalf("migrate up in the image: %v\n%s", err, out)
	}
	if out, err := runIn("/inbox", "version").Output(); err != nil || !strings.HasPrefix(string(out), "inbox v0.0.0-imagetest (revision ") {
		t.Fatalf("inbox version in the image: %q, %v; want the stamped version", out, err)
	}

	env = append(env, "TWILIO_AUTH_TOKEN="+testToken, "PUBLIC_BASE_URL="+publicURL, "LISTEN_ADDR=127.0.0.1:0",
		"ADMIN_ADDR=off", "RECONCILE_INTERVAL=off", "FORWARD_URL="+app.URL, "FORWARD_SECRET="+teamapp.Secret,
		"TWILIO_API_URL=http://127.0.0.1:1") // as startServe's
	serve := runIn("/inbox", "serve")
	logs := &logtest.Buffer{}
	serve.Stderr = logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-serve.Process.Pid, syscall.SIGTERM)
		<-exited
	})
	addr := listening(t, logs, "listening", func() error {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("serve in the image exited: %v", err)
		default:
			return nil
		}
	})

	if uid := processUID(t, serve.Process.Pid, "/inbox\x00serve\x00"); uid == "0" {
		t.Fatal("serve runs as root in the image")
	} else {
		t.Logf("serve runs as uid %s", uid)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz in the image: %d", resp.StatusCode)
	}
	sid := fixture.SID()
	resp, err = http.DefaultClient.Do(signedRequest(t, addr, testToken, simulate.InboundForm(simulate.SMS, sid, 1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a signed delivery to the image: %d\n%s", resp.StatusCode, logs)
	}
	pool := dbtest.Connect(t, databaseURL, 2)
	if rows, _ := counts(t, pool, sid); rows != 1 {
		t.Fatalf("%d rows for the delivered sid, want 1", rows)
	}
	poll.Until(t, "the forward from the image", func() bool { return app.Deliveries(sid) == 1 })
}

// processUID returns the real uid of the process in process group pgid
// whose command line is cmdline and whose root is not the host's (it runs
// in the container), from /proc.
func processUID(t *testing.T, pgid int, cmdline string) string {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cl, err := os.ReadFile(d + "/cmdline")
		if err != nil || string(cl) != cmdline {
			continue
		}
		stat, err1 := os.ReadFile(d + "/stat")
		root, err2 := os.Readlink(d + "/root")
		status, err3 := os.ReadFile(d + "/status")
		if err1 != nil || err2 != nil || err3 != nil || root == "/" {
			continue
		}
		// stat: pid (comm) state ppid pgrp ...; comm may hold spaces.
		if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		for line := range strings.Lines(string(status)) {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
				return f[1]
			}
		}
	}
	t.Fatalf("no process %q in the container", strings.ReplaceAll(cmdline, "\x00", " "))
	return ""
}
