// Package twilio knows Twilio's webhook conventions: how a request is signed
// and what its ids look like. It depends only on the standard library.
package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"hash"
	"net/url"
	"slices"
	"strings"
)

// SignatureHeader is the header Twilio puts its signature in.
const SignatureHeader = "X-Twilio-Signature"

// Validator checks X-Twilio-Signature against an account's auth tokens.
type Validator struct {
	tokens [][]byte
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
	return v, nil
}

// Valid reports whether signature is Twilio's signature of a POST to
// fullURL with form params, under one of the Validator's tokens.
//
// fullURL is the URL Twilio called: scheme, host, optional port, path and
// query, exactly as configured in Twilio. Like Twilio's helper libraries,
// Valid also accepts the signature of the same URL with the scheme's default
// port added (when fullURL has none) or removed (when fullURL has it), since
// Twilio's callers differ in that; a non-default port must match. A #fragment
// (Twilio's connection overrides) is not signed and is ignored. The
// comparison takes the same time whatever the signature's bytes.
func (v *Validator) Valid(fullURL string, params url.Values, signature string) bool {
	// A SHA-1 MAC is 20 bytes: 28 characters of padded base64, which
	// decode into at most 21 bytes.
	var got [sha1.Size + 1]byte
	if len(signature) != base64.StdEncoding.EncodedLen(sha1.Size) {
		return false
	}
	n, err := base64.StdEncoding.Decode(got[:], []byte(signature))
	if err != nil || n != sha1.Size {
		return false
	}
	keys := sortedKeys(params)
	var sum [sha1.Size]byte
	for _, u := range urlVariants(fullURL) {
		for _, token := range v.tokens {
			if hmac.Equal(mac(sum[:0], token, u, keys, params), got[:sha1.Size]) {
				return true
			}
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
	sum := mac(nil, []byte(token), u, sortedKeys(params), params)
	return base64.StdEncoding.EncodeToString(sum)
}

func sortedKeys(params url.Values) []string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func mac(dst, token []byte, fullURL string, keys []string, params url.Values) []byte {
	h := hmac.New(sha1.New, token)
	h.Write([]byte(fullURL))
	for _, k := range keys {
		writeParam(h, k, params[k])
	}
	return h.Sum(dst)
}

func writeParam(h hash.Hash, name string, values []string) {
	if len(values) > 1 {
		values = slices.Compact(slices.Sorted(slices.Values(values)))
	}
	for _, v := range values {
		h.Write([]byte(name))
		h.Write([]byte(v))
	}
}

// urlVariants returns fullURL without its fragment and, when its port is
// absent or the scheme's default, the same URL with the default port added
// or removed.
func urlVariants(fullURL string) []string {
	fullURL, _, _ = strings.Cut(fullURL, "#")
	scheme, rest, ok := strings.Cut(fullURL, "://")
	if !ok {
		return []string{fullURL}
	}
	var def string
	switch strings.ToLower(scheme) {
	case "https":
		def = "443"
	case "http":
		def = "80"
	default:
		return []string{fullURL}
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
		return []string{fullURL, scheme + "://" + host + ":" + def + tail}
	case def:
		return []string{fullURL, scheme + "://" + host + tail}
	default:
		return []string{fullURL}
	}
}
