// Package twilio knows Twilio's webhook conventions: how a request's form is
// encoded and signed, and what its ids look like. It depends only on the
// standard library.
package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"hash"
	"net/url"
	"strings"
	"sync"
)

// SignatureHeader is the header Twilio puts its signature in.
const SignatureHeader = "X-Twilio-Signature"

// IdempotencyHeader is the header in which Twilio tells its retries of one
// webhook apart. It is not signed, so it is informational only: the message
// sid stays the key.
const IdempotencyHeader = "I-Twilio-Idempotency-Token"

// strictBase64 refuses the encodings that differ from the canonical one only
// in the unused low bits of the last character: without it, four header
// values would validate one signature.
var strictBase64 = base64.StdEncoding.Strict()

// Validator checks X-Twilio-Signature against an account's auth tokens. It is
// safe for concurrent use.
type Validator struct {
	tokens  [][]byte
	scratch sync.Pool // *scratch: reused buffers and HMACs, one set per call
}

type scratch struct {
	data []byte      // URL followed by the parameters, as signed
	alt  []byte      // the same with the URL's default port added or removed
	macs []hash.Hash // an HMAC-SHA1 per token
	sum  [sha1.Size]byte
}

// NewValidator returns a Validator that accepts signatures made with primary
// or, when it is not empty, secondary: Twilio lets an account hold a second
// auth token while it rotates the first. primary must not be empty.
func NewValidator(primary, secondary string) (*Validator, error) {
	if primary == "" {
		return nil, errors.New("auth token is empty")
	}
	v := &Validator{tokens: [][]byte{[]byte(primary)}}
	if secondary != "" {
		v.tokens = append(v.tokens, []byte(secondary))
	}
	v.scratch.New = func() any {
		s := &scratch{}
		for _, t := range v.tokens {
			s.macs = append(s.macs, hmac.New(sha1.New, t))
		}
		return s
	}
	return v, nil
}

// Valid reports whether signature is Twilio's signature of a POST of form to
// fullURL, under one of the Validator's tokens.
//
// fullURL is the URL Twilio called: scheme, host, optional port, path and
// query, exactly as configured in Twilio. Like Twilio's helper libraries,
// Valid also accepts the signature of the same URL with the scheme's default
// port added (when fullURL has none) or removed (when fullURL has it), since
// Twilio's callers differ in that; a non-default port must match. A #fragment
// (Twilio's connection overrides) is not signed and is ignored. The
// comparison takes the same time whatever the signature's bytes. Only the
// canonical base64 encoding of a signature is accepted.
func (v *Validator) Valid(fullURL string, form Form, signature string) bool {
	// A SHA-1 MAC is 20 bytes: 28 characters of padded base64, which
	// decode into at most 21 bytes.
	var got [sha1.Size + 1]byte
	if len(signature) != base64.StdEncoding.EncodedLen(sha1.Size) {
		return false
	}
	n, err := strictBase64.Decode(got[:], []byte(signature))
	if err != nil || n != sha1.Size {
		return false
	}
	s := v.scratch.Get().(*scratch)
	defer v.scratch.Put(s)

	fullURL, _, _ = strings.Cut(fullURL, "#")
	s.data = appendSigned(append(s.data[:0], fullURL...), form)
	if s.matches(s.data, got[:sha1.Size]) {
		return true
	}
	alt, ok := alternateURL(fullURL)
	if !ok {
		return false
	}
	s.alt = append(append(s.alt[:0], alt...), s.data[len(fullURL):]...)
	return s.matches(s.alt, got[:sha1.Size])
}

func (s *scratch) matches(data, want []byte) bool {
	for _, mac := range s.macs {
		mac.Reset()
		mac.Write(data)
		if hmac.Equal(mac.Sum(s.sum[:0]), want) {
			return true
		}
	}
	return false
}

// Sign returns the X-Twilio-Signature Twilio would send for a POST of
// params to fullURL under token: base64 of HMAC-SHA1 over the URL followed by
// each parameter, sorted by name, as name then value. A repeated parameter's
// values are de-duplicated and sorted first, as twilio-node does.
func Sign(token, fullURL string, params url.Values) string {
	u, _, _ := strings.Cut(fullURL, "#")
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write(appendSigned([]byte(u), FormFromValues(params)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// appendSigned appends what Twilio signs of a sorted form: name then value
// of each parameter, an exact repeat of a name and value counted once.
func appendSigned(dst []byte, form Form) []byte {
	for i, p := range form {
		if i > 0 && p == form[i-1] {
			continue
		}
		dst = append(append(dst, p.Name...), p.Value...)
	}
	return dst
}

// alternateURL returns fullURL with the scheme's default port added, when it
// has no port, or removed, when it has the default one.
func alternateURL(fullURL string) (string, bool) {
	scheme, rest, ok := strings.Cut(fullURL, "://")
	if !ok {
		return "", false
	}
	var def string
	switch strings.ToLower(scheme) {
	case "https":
		def = "443"
	case "http":
		def = "80"
	default:
		return "", false
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	host, port := authority, ""
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.Contains(authority[i:], "]") {
		host, port = authority[:i], authority[i+1:]
	}
	switch port {
	case "":
		return scheme + "://" + host + ":" + def + tail, true
	case def:
		return scheme + "://" + host + tail, true
	default:
		return "", false
	}
}
