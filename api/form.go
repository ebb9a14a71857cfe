package api

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"inbox/twilio"
)

// readSignedForm reads a Twilio webhook's form body and checks its
// signature. In order, so that each refusal names the first thing wrong: a
// content type other than a form is 415; a body over the limit 413; more
// than MaxParams parameters or broken percent-encoding 400; a missing or
// wrong X-Twilio-Signature 403. Nothing is written before all have passed.
func readSignedForm(cfg Config, w http.ResponseWriter, r *http.Request) (twilio.Form, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, refuse(http.StatusUnsupportedMediaType, "content type %q is not application/x-www-form-urlencoded", truncate(ct))
	}
	if r.ContentLength > cfg.MaxBodyBytes {
		return nil, refuse(http.StatusRequestEntityTooLarge, "body of %d bytes is over the %d-byte limit", r.ContentLength, cfg.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, refuse(http.StatusRequestEntityTooLarge, "body is over the %d-byte limit", cfg.MaxBodyBytes)
		}
		return nil, refuse(http.StatusBadRequest, "reading body: %v", err)
	}
	return verifyForm(cfg, body, r.RequestURI, r.Header.Get(twilio.SignatureHeader))
}

// verifyForm parses a form body and checks its signature over the public
// URL of requestURI: the request's CPU work, apart from reading it.
func verifyForm(cfg Config, body []byte, requestURI, sig string) (twilio.Form, error) {
	if n := bytes.Count(body, []byte("&")) + 1; n > MaxParams {
		return nil, refuse(http.StatusBadRequest, "%d form parameters, more than the %d allowed", n, MaxParams)
	}
	form, err := twilio.ParseForm(body)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed form encoding: %v", err)
	}
	if sig == "" {
		return nil, refuse(http.StatusForbidden, "no %s header", twilio.SignatureHeader)
	}
	if !cfg.Validator.Valid(cfg.PublicBaseURL+requestURI, form, sig) {
		path, _, _ := strings.Cut(requestURI, "?")
		return nil, refuse(http.StatusForbidden, "%s does not match %s with this body under the auth token(s)", twilio.SignatureHeader, cfg.PublicBaseURL+path)
	}
	return form, nil
}

// truncate shortens a client-supplied string for a log line or a reason.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
