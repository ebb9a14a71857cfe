package httpdest_test

import (
	"strings"
	"testing"
	"time"

	"inbox/destination/httpdest"
	"inbox/internal/teamapp"
)

func TestSecretMustBeStandardWebhooks(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "hunter2", "whsec_", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := httpdest.NewForwarder("https://app.example.com/hook", bad, time.Second); err == nil {
			t.Errorf("secret %q accepted", bad)
		} else if len(bad) > 8 && strings.Contains(err.Error(), bad[6:]) {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
	for _, bad := range []string{"ftp://x", "app.example.com/hook", "https://"} {
		if _, err := httpdest.NewForwarder(bad, teamapp.Secret, time.Second); err == nil {
			t.Errorf("url %q accepted", bad)
		}
	}
}
