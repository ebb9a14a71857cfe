package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"inbox/account"
	"inbox/internal/clip"
	"inbox/message"
	"inbox/twilio"
)

// formReader reads Twilio's signed forms: what both delivery handlers
// share.
type formReader struct {
	// publicBaseURL is what Twilio calls, without a trailing slash: the
	// signed URL is it followed by the request's path and query.
	publicBaseURL string
	validator     *twilio.Validator // when accounts is nil
	accounts      Accounts
	maxBody       int64
}

// read reads a Twilio webhook's form body and checks its signature. In
// order, so that each refusal names the first thing wrong: a content type
// other than a form is 415; a body over the limit 413; more than MaxParams
// parameters or broken percent-encoding 400; a missing or wrong
// X-Twilio-Signature 403. Nothing is written before all have passed.
func (f *formReader) read(w http.ResponseWriter, r *http.Request) (twilio.Form, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, refuse(http.StatusUnsupportedMediaType, RefusalContentType, "content type %q is not application/x-www-form-urlencoded", clip.Clip(ct))
	}
	body, err := readBody(w, r, f.maxBody)
	if err != nil {
		return nil, err
	}
	form, validator, err := f.verify(r.Context(), body, r.RequestURI, r.Header.Get(twilio.SignatureHeader))
	if he, ok := errors.AsType[*httpError](err); ok && he.code == RefusalSignatureMismatch {
		he.hint = mismatchHint(f.publicBaseURL, r, validator, form)
	}
	return form, err
}

// readBody reads a delivery's body, refusing one over max bytes (413,
// before reading when its Content-Length says so) or unreadable (400):
// every delivery route's bound.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, refuse(http.StatusRequestEntityTooLarge, RefusalBodyTooLarge, "body of %d bytes is over the %d-byte limit", r.ContentLength, max)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, refuse(http.StatusRequestEntityTooLarge, RefusalBodyTooLarge, "body is over the %d-byte limit", max)
		}
		return nil, refuse(http.StatusBadRequest, RefusalBodyUnreadable, "reading body: %v", err)
	}
	return body, nil
}

// mismatchHint says what to check after a signature mismatch: the URL the
// request was in fact signed for, when it is PUBLIC_BASE_URL with the other
// scheme or the host the request came to (what a TLS proxy in front, or a
// mistyped host, makes), else where to look. It runs only on a refusal.
func mismatchHint(base string, r *http.Request, v *twilio.Validator, form twilio.Form) string {
	const check = "check PUBLIC_BASE_URL (scheme, host, port, path): it must be what Twilio calls"
	u, err := url.Parse(base)
	if err != nil || v == nil {
		return check
	}
	other := map[string]string{"http": "https", "https": "http"}[u.Scheme]
	hosts := []string{u.Host}
	for _, h := range []string{r.Host, r.Header.Get("X-Forwarded-Host")} {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	for _, scheme := range []string{u.Scheme, other} {
		for _, host := range hosts {
			if scheme == u.Scheme && host == u.Host {
				continue
			}
			candidate := scheme + "://" + host + u.Path
			if v.Valid(candidate+r.RequestURI, form, r.Header.Get(twilio.SignatureHeader)) {
				return "the request is signed for " + candidate + ": set PUBLIC_BASE_URL=" + candidate
			}
		}
	}
	return check
}

// verify parses a form body and checks its signature over the public URL
// of requestURI: the request's CPU work, apart from reading it. It returns
// the validator it checked with, for the caller's diagnosis.
func (f *formReader) verify(ctx context.Context, body []byte, requestURI, sig string) (twilio.Form, *twilio.Validator, error) {
	if n := bytes.Count(body, []byte("&")) + 1; n > MaxParams {
		return nil, nil, refuse(http.StatusBadRequest, RefusalTooManyParams, "%d form parameters, more than the %d allowed", n, MaxParams)
	}
	form, err := twilio.ParseForm(body)
	if err != nil {
		return nil, nil, refuse(http.StatusBadRequest, RefusalMalformedForm, "malformed form encoding: %v", err)
	}
	if sig == "" {
		return nil, nil, refuse(http.StatusForbidden, RefusalSignatureMissing, "no %s header", twilio.SignatureHeader)
	}
	validator, err := f.validatorFor(ctx, form)
	if err != nil {
		return nil, nil, err
	}
	if !validator.Valid(f.publicBaseURL+requestURI, form, sig) {
		path, _, _ := strings.Cut(requestURI, "?")
		return form, validator, refuse(http.StatusForbidden, RefusalSignatureMismatch, "%s does not match %s with this body under the auth token(s)", twilio.SignatureHeader, f.publicBaseURL+path)
	}
	return form, validator, nil
}

// validatorFor returns the signature check of the account the form names,
// refusing (403) an account that is not configured, disabled, or whose
// token cannot be read. The AccountSid is not yet verified here; it only
// chooses which token must have signed the request.
func (f *formReader) validatorFor(ctx context.Context, form twilio.Form) (*twilio.Validator, error) {
	if f.accounts == nil {
		return f.validator, nil
	}
	sid := form.Get("AccountSid")
	v, err := f.accounts.Validator(ctx, sid)
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, account.ErrUnknown):
		return nil, refuse(http.StatusForbidden, RefusalAccountUnknown, "AccountSid %q is not an account this service accepts", clip.Clip(sid))
	case errors.Is(err, account.ErrDisabled):
		return nil, refuse(http.StatusForbidden, RefusalAccountDisabled, "AccountSid %q is disabled", sid)
	case errors.Is(err, account.ErrUnreadable):
		return nil, &httpError{status: http.StatusForbidden, code: RefusalAccountUnreadable, reason: "the token of AccountSid " + sid + " cannot be decrypted", err: err}
	default:
		return nil, unavailable(err)
	}
}

// formParams checks what every messaging webhook (inbound message or status
// callback) must be to be stored exactly, and returns its parameters by name
// and its MessageSid. It refuses (400):
//   - a repeated parameter, or a name or value that is not valid UTF-8 or
//     holds a NUL (PostgreSQL's text cannot);
//   - a missing or malformed MessageSid (lower-case hex, as Twilio writes it);
//   - what every real messaging webhook carries, missing or malformed: an
//     AccountSid, non-empty From and To, an ApiVersion, and SmsSid and
//     SmsMessageSid equal to MessageSid when present.
//
// The last rule is not pedantry. Twilio's signature concatenates names and
// values with no separator, so the text of a signed request can be re-split
// into other parameters with the same signature: a Body of
// "hiMessageSidSM…Na" signs like a MessageSid of its own. A re-split form
// loses the parameters every real webhook has, or makes them disagree.
func formParams(form twilio.Form) (params message.Params, sid string, err error) {
	params = make(message.Params, len(form))
	for i, p := range form {
		if i > 0 && p.Name == form[i-1].Name { // sorted: a repeat is adjacent
			return nil, "", refuse(http.StatusBadRequest, RefusalParamRepeated, "parameter %q is repeated", clip.Clip(strings.ToValidUTF8(p.Name, "?")))
		}
		if !message.Storable(p.Name) || !message.Storable(p.Value) {
			return nil, "", refuse(http.StatusBadRequest, RefusalParamNotText, "parameter %q is not valid UTF-8 text", clip.Clip(strings.ToValidUTF8(p.Name, "?")))
		}
		params[p.Name] = p.Value
	}
	sid = params["MessageSid"]
	switch {
	case sid == "":
		return nil, "", refuse(http.StatusBadRequest, RefusalMessageSIDMissing, "MessageSid is missing")
	case !twilio.IsMessageSID(sid):
		return nil, "", refuse(http.StatusBadRequest, RefusalMessageSIDInvalid, "MessageSid %q is not a message sid (SM or MM and 32 lower-case hex digits)", clip.Clip(sid))
	case !twilio.IsAccountSID(params["AccountSid"]):
		return nil, "", refuse(http.StatusBadRequest, RefusalAccountSIDInvalid, "AccountSid %q is not an account sid (AC and 32 lower-case hex digits)", clip.Clip(params["AccountSid"]))
	case params["From"] == "" || params["To"] == "" || params["ApiVersion"] == "":
		return nil, "", refuse(http.StatusBadRequest, RefusalRequiredParamMissing, "From, To and ApiVersion must all be present and non-empty")
	}
	for _, alias := range [...]string{"SmsSid", "SmsMessageSid"} {
		if v, ok := params[alias]; ok && v != sid {
			return nil, "", refuse(http.StatusBadRequest, RefusalSIDAliasMismatch, "%s %q differs from MessageSid %q", alias, clip.Clip(v), sid)
		}
	}
	return params, sid, nil
}

// count parses params[name] as an integer in [0, max], or def when absent.
func count(params message.Params, name string, def, max int) (int, error) {
	s, ok := params[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return 0, refuse(http.StatusBadRequest, RefusalCountInvalid, "%s %q is not a whole number from 0 to %d", name, clip.Clip(s), max)
	}
	return n, nil
}
