package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// The console's session: a cookie the server signs and keeps nothing of,
// so a session works on every replica and survives a restart. A logout
// records its time in the database (Revocations), and every replica
// refuses the sessions issued before it: a copied cookie stops working.
const (
	sessionCookie = "inbox_session"
	// sessionLifetime bounds a session: a stolen cookie works at most this
	// long, unless someone logs out or ADMIN_TOKEN changes first.
	sessionLifetime = 12 * time.Hour
	// revocationsFresh is how long a replica trusts the revocation time it
	// read: a logout on another replica ends a copied session here within
	// it.
	revocationsFresh = 2 * time.Second
	// csrfField is the name of the CSRF token in every console form.
	csrfField = "csrf"
)

// sessions signs and reads session cookies, and the CSRF tokens bound to
// them.
type sessions struct {
	// key signs cookies and CSRF tokens: derived from ADMIN_TOKEN, so every
	// replica with the same token accepts the same sessions and a new token
	// ends every session; random per process when there is no token.
	key []byte
	now func() time.Time
	// revocations records logouts for every replica; nil: a logout only
	// clears the browser's cookie.
	revocations Revocations
	revoked     atomic.Pointer[revokedRead] // the last read of it
}

// Revocations is where a logout is recorded, so every replica ends the
// sessions issued before it (store.Store).
type Revocations interface {
	SessionsRevokedBefore(ctx context.Context) (time.Time, error)
	RevokeSessionsBefore(ctx context.Context, t time.Time) error
}

// revokedRead is the revocation time as read at readAt.
type revokedRead struct{ before, readAt time.Time }

// newSessions derives the key from token, or draws one when token is empty.
func newSessions(token string, r Revocations) *sessions {
	var key []byte
	if token != "" {
		m := hmac.New(sha256.New, []byte(token))
		m.Write([]byte("inbox admin console session key v1"))
		key = m.Sum(nil)
	} else {
		key = make([]byte, 32)
		rand.Read(key) // never fails (crypto/rand)
	}
	return &sessions{key: key, now: time.Now, revocations: r}
}

// revokedBefore is the time before which sessions are refused, read again
// once what was read is older than revocationsFresh. When it cannot be
// read, the last time read stands (it only ever moves forward).
func (ss *sessions) revokedBefore(ctx context.Context) time.Time {
	last := ss.revoked.Load()
	if ss.revocations == nil || (last != nil && ss.now().Sub(last.readAt) < revocationsFresh) {
		if last == nil {
			return time.Time{}
		}
		return last.before
	}
	before, err := ss.revocations.SessionsRevokedBefore(ctx)
	if err != nil {
		if last == nil {
			return time.Time{}
		}
		return last.before
	}
	ss.revoked.Store(&revokedRead{before: before, readAt: ss.now()})
	return before
}

// revoke ends every session issued until now, on every replica.
func (ss *sessions) revoke(ctx context.Context) error {
	if ss.revocations == nil {
		return nil
	}
	now := ss.now()
	if err := ss.revocations.RevokeSessionsBefore(ctx, now); err != nil {
		return err
	}
	ss.revoked.Store(&revokedRead{before: now, readAt: now})
	return nil
}

// session is one browser's: authed once it logged in (or when the
// listener needs no token).
type session struct {
	id      [16]byte
	issued  time.Time // to the millisecond
	expires time.Time
	authed  bool
}

// payloadLen is a cookie's payload's length: id, issued (Unix ms),
// expires (Unix s), authed.
const payloadLen = 16 + 8 + 8 + 1

// payload is what the cookie carries and its signature covers.
func (s session) payload() []byte {
	b := make([]byte, 0, payloadLen)
	b = append(b, s.id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(s.issued.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, uint64(s.expires.Unix()))
	if s.authed {
		return append(b, 1)
	}
	return append(b, 0)
}

func (ss *sessions) mac(purpose string, b []byte) []byte {
	m := hmac.New(sha256.New, ss.key)
	m.Write([]byte(purpose))
	m.Write(b)
	return m.Sum(nil)
}

// get returns the request's session when its cookie is one this server
// signed, has not expired, and was issued after the last logout.
func (ss *sessions) get(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	p, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return session{}, false
	}
	b, err1 := base64.RawURLEncoding.DecodeString(p)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || len(b) != payloadLen || !hmac.Equal(got, ss.mac("session|", b)) {
		return session{}, false
	}
	var s session
	copy(s.id[:], b[:16])
	s.issued = time.UnixMilli(int64(binary.BigEndian.Uint64(b[16:24])))
	s.expires = time.Unix(int64(binary.BigEndian.Uint64(b[24:32])), 0)
	s.authed = b[32] == 1
	if !ss.now().Before(s.expires) || (s.authed && s.issued.Before(ss.revokedBefore(r.Context()))) {
		return session{}, false
	}
	return s, true
}

// issue starts a new session (a new id, so one from before a login is
// never the one after it) and sets its cookie: HttpOnly, SameSite=Strict
// (a cross-site request carries no session at all), Secure when the
// console is reached over https (directly, or through a proxy that says
// so).
func (ss *sessions) issue(w http.ResponseWriter, r *http.Request, authed bool) session {
	now := ss.now()
	s := session{issued: now.Truncate(time.Millisecond), expires: now.Add(sessionLifetime).Truncate(time.Second), authed: authed}
	rand.Read(s.id[:])
	b := s.payload()
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(ss.mac("session|", b)),
		Path:     "/",
		MaxAge:   int(sessionLifetime / time.Second),
		HttpOnly: true,
		Secure:   overHTTPS(r),
		SameSite: http.SameSiteStrictMode,
	})
	return s
}

// clear removes the session cookie.
func (ss *sessions) clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: overHTTPS(r), SameSite: http.SameSiteStrictMode})
}

// csrf is the token every form of the session carries: bound to the
// session's id, so one from another session (an earlier login, another
// browser) is refused.
func (ss *sessions) csrf(s session) string {
	return base64.RawURLEncoding.EncodeToString(ss.mac("csrf|", s.id[:]))
}

// checkCSRF reports whether token is the session's.
func (ss *sessions) checkCSRF(s session, token string) bool {
	got, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && hmac.Equal(got, ss.mac("csrf|", s.id[:]))
}

// overHTTPS reports whether the browser reached the console over https.
// X-Forwarded-Proto is believed: it can only make the cookie stricter.
func overHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

type sessionKey struct{}

// withSession gives every console request a session: the one its cookie
// carries, or a new one (authed when the request got past withAuth by its
// credentials, or the listener needs none), so every page can carry a CSRF
// token, the login form's included.
func (ss *sessions) withSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := ss.get(r)
		if !ok || (!s.authed && authedByHeader(r)) {
			s = ss.issue(w, r, authedByHeader(r))
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

// sessionOf returns the session withSession gave r.
func sessionOf(r *http.Request) session {
	s, _ := r.Context().Value(sessionKey{}).(session)
	return s
}

type authedKey struct{}

// authedByHeader reports whether withAuth let r through on its own
// credentials (a token, or none needed), rather than a session's.
func authedByHeader(r *http.Request) bool {
	v, _ := r.Context().Value(authedKey{}).(bool)
	return v
}
