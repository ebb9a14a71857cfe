package admin

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHostAllowedNamesOnlyWhatCannotBeRebound(t *testing.T) {
	hosts := []string{"admin.example.com"}
	for host, want := range map[string]bool{
		"127.0.0.1:9090": true, "[::1]:9090": true, "10.1.2.3": true, "localhost:9090": true, "LOCALHOST": true,
		"app.localhost:9090": true, "admin.example.com": true, "Admin.Example.com.:443": true,
		"evil.example": false, "127.0.0.1.nip.io:9090": false, "": false, "example.com": false, "admin.example.com.evil.example": false,
	} {
		if got := hostAllowed(host, hosts); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestSameOriginIsTheListenerOrAProxyName(t *testing.T) {
	hosts := []string{"admin.example.com"}
	h := withSameOrigin(hosts, slog.New(slog.DiscardHandler), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, c := range []struct {
		origin, host string
		want         bool
	}{
		{"http://127.0.0.1:9090", "127.0.0.1:9090", true},
		{"https://admin.example.com", "127.0.0.1:9090", true}, // a proxy that rewrites Host
		{"http://127.0.0.1:9091", "127.0.0.1:9090", false},
		{"http://evil.example", "127.0.0.1:9090", false},
		{"null", "127.0.0.1:9090", false},
		{"file://", "127.0.0.1:9090", false},
	} {
		r := httptest.NewRequest(http.MethodPost, "http://"+c.host+"/api/forwarding/pause", nil)
		r.Header.Set("Origin", c.origin)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Code == http.StatusOK; got != c.want {
			t.Errorf("POST with Origin %q to Host %q: %d, want allowed %v", c.origin, c.host, w.Code, c.want)
		}
	}
}
