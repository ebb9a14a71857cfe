package admin

import (
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"

	"inbox/internal/clip"
)

// withHost refuses a request whose Host header is not a name this
// listener answers to. A page on an attacker's domain can resolve that
// domain to 127.0.0.1 (DNS rebinding) and so reach a loopback listener as
// "same origin" in the browser's eyes; its requests then carry the
// attacker's name as Host. IP literals cannot be rebound, and neither can
// localhost, so those pass; any other name must be listed in hosts
// (ADMIN_HOSTS).
func withHost(hosts []string, logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, hosts) {
			logger.WarnContext(r.Context(), "admin request refused: Host is not this listener's",
				"host", clip.Clip(r.Host), "path", r.URL.Path, "remote", r.RemoteAddr,
				"hint", "a name this listener is reached by must be listed in ADMIN_HOSTS")
			writeProblem(w, http.StatusForbidden, "Host "+clip.Clip(r.Host)+" is not a name this listener answers to: "+
				"list it in ADMIN_HOSTS, or use an IP address or localhost", "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed reports whether hostport (a Host header) is an IP address,
// localhost or a name under .localhost, or one of hosts.
func hostAllowed(hostport string, hosts []string) bool {
	host := hostOnly(hostport)
	if host == "" {
		return false
	}
	if net.ParseIP(host) != nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return slices.Contains(hosts, host)
}

// hostOnly returns the host of a host[:port], without the brackets of an
// IPv6 literal.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// withSameOrigin refuses a state-changing request (any method but GET,
// HEAD and OPTIONS) that a browser sent on behalf of another site: an
// operator's browser holds the admin credentials (Basic auth is sent
// automatically), and without a token any browser on the machine can
// reach a loopback listener, so a form on any web page could otherwise
// replay forwards or delete jobs. The check is the standard library's
// (http.CrossOriginProtection): a Sec-Fetch-Site other than same-origin
// or none is refused, and so is an Origin that is neither the request's
// Host nor one of hosts (the names a proxy in front is reached by, over
// http or https on their default ports), with 403. curl and scripts send
// neither, and pass; withContentType then stops what an old browser that
// sends neither could still send.
func withSameOrigin(hosts []string, logger *slog.Logger, next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	for _, h := range hosts {
		for _, scheme := range []string{"https://", "http://"} {
			// Names were checked when ADMIN_HOSTS was read: no scheme,
			// port or path, so each makes an origin.
			_ = cop.AddTrustedOrigin(scheme + h)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		why := "cross-site request refused: Origin " + clip.Clip(r.Header.Get("Origin")) + " is not this listener"
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
			why = "cross-site request refused: Sec-Fetch-Site is " + clip.Clip(site)
		}
		refuseUnsafe(w, r, logger, http.StatusForbidden, why)
	}))
	return cop.Handler(next)
}

// withContentType refuses, with 415, a POST whose content type a plain
// form or a no-cors fetch can send, so that no cross-site POST reaches a
// handler without the browser asking first (a CORS preflight, which this
// listener never grants): the API's POSTs must say application/json, and
// River UI sends JSON (or, with PUT, no body). The console's own forms are
// such POSTs: each carries its session's CSRF token instead, which its
// handler checks (console.go), and no cross-site request carries the
// session (SameSite=Strict).
func withContentType(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			switch {
			case strings.HasPrefix(r.URL.Path, "/api/") && (err != nil || mt != "application/json"):
				refuseUnsafe(w, r, logger, http.StatusUnsupportedMediaType, "a POST to the API must have Content-Type: application/json")
				return
			case consolePath(r.URL.Path):
			case err != nil || corsSafelisted(mt):
				refuseUnsafe(w, r, logger, http.StatusUnsupportedMediaType, "a POST must not have a content type a cross-site form can send")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// refuseUnsafe answers a state-changing request that may not be what the
// operator meant, and logs why, with what the browser said of its origin.
func refuseUnsafe(w http.ResponseWriter, r *http.Request, logger *slog.Logger, status int, why string) {
	logger.WarnContext(r.Context(), "admin request refused: not provably same-origin", "reason", why,
		"method", r.Method, "path", r.URL.Path, "origin", clip.Clip(r.Header.Get("Origin")),
		"sec_fetch_site", clip.Clip(r.Header.Get("Sec-Fetch-Site")), "remote", r.RemoteAddr)
	writeProblem(w, status, why, "")
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// corsSafelisted reports whether a browser sends a POST of this media type
// to another origin without a preflight (the Fetch standard's list).
func corsSafelisted(mediaType string) bool {
	switch mediaType {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}
