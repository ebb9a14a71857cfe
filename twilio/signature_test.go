package twilio_test

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"

	"inbox/twilio"
)

// vector is one case of testdata/twilio-signatures.json: signatures computed
// by the official twilio-node helper, an implementation that is not ours.
type vector struct {
	Name      string         `json:"name"`
	Token     string         `json:"token"`
	URL       string         `json:"url"`
	Body      string         `json:"body"`
	Signature string         `json:"signature"`
	Params    map[string]any `json:"params"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/twilio-signatures.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []vector `json:"cases"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("no vectors")
	}
	return file.Cases
}

func mustValidator(t testing.TB, primary, secondary string) *twilio.Validator {
	t.Helper()
	v, err := twilio.NewValidator(primary, secondary)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTwilioNodeVectors(t *testing.T) {
	t.Parallel()
	for _, c := range loadVectors(t) {
		t.Run(c.Name, func(t *testing.T) {
			params, err := url.ParseQuery(c.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got := twilio.Sign(c.Token, c.URL, params); got != c.Signature {
				t.Errorf("Sign = %s, twilio-node says %s", got, c.Signature)
			}
			form, err := twilio.ParseForm([]byte(c.Body))
			if err != nil {
				t.Fatal(err)
			}
			if !mustValidator(t, c.Token, "").Valid(c.URL, form, c.Signature) {
				t.Error("Valid rejects twilio-node's signature")
			}
			if mustValidator(t, c.Token+"x", "").Valid(c.URL, form, c.Signature) {
				t.Error("Valid accepts the signature under another token")
			}
		})
	}
}

// TestDocumentedExample is the worked example of Twilio's security docs.
func TestDocumentedExample(t *testing.T) {
	t.Parallel()
	params := url.Values{
		"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675310"}, "Digits": {"1234"},
		"From": {"+14158675310"}, "To": {"+18005551212"},
	}
	const u, sig = "https://example.com/myapp.php?foo=1&bar=2", "L/OH5YylLD5NRKLltdqwSvS0BnU="
	if got := twilio.Sign("12345", u, params); got != sig {
		t.Fatalf("Sign = %s, want %s", got, sig)
	}
	if !mustValidator(t, "12345", "").Valid(u, twilio.FormFromValues(params), sig) {
		t.Fatal("Valid rejects Twilio's documented example")
	}
}

func TestValidVariantsAndRefusals(t *testing.T) {
	t.Parallel()
	params := url.Values{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "Body": {"hi"}}
	sign := func(token, u string) string { return twilio.Sign(token, u, params) }
	v := mustValidator(t, "primary", "secondary")

	cases := []struct {
		name      string
		serverURL string // what the server reconstructs
		signature string // what Twilio sent
		params    url.Values
		want      bool
	}{
		{"exact", "https://h.example.com/twilio/messages", sign("primary", "https://h.example.com/twilio/messages"), params, true},
		{"secondary token during rotation", "https://h.example.com/twilio/messages", sign("secondary", "https://h.example.com/twilio/messages"), params, true},
		{"Twilio added the default port", "https://h.example.com/twilio/messages", sign("primary", "https://h.example.com:443/twilio/messages"), params, true},
		{"Twilio dropped the default port", "https://h.example.com:443/twilio/messages", sign("primary", "https://h.example.com/twilio/messages"), params, true},
		{"http default port", "http://h.example.com/x?a=1", sign("primary", "http://h.example.com:80/x?a=1"), params, true},
		{"connection-override fragment is not signed", "https://h.example.com/twilio/messages#rc=2&rp=all", sign("primary", "https://h.example.com/twilio/messages"), params, true},
		{"ipv6 host with default port", "https://[::1]/t", sign("primary", "https://[::1]:443/t"), params, true},
		{"non-default port must match", "https://h.example.com:8443/twilio/messages", sign("primary", "https://h.example.com/twilio/messages"), params, false},
		{"wrong default port for the scheme", "https://h.example.com/twilio/messages", sign("primary", "https://h.example.com:80/twilio/messages"), params, false},
		{"trailing slash is another URL", "https://h.example.com/twilio/messages/", sign("primary", "https://h.example.com/twilio/messages"), params, false},
		{"another host", "https://evil.example.com/twilio/messages", sign("primary", "https://h.example.com/twilio/messages"), params, false},
		{"another token", "https://h.example.com/twilio/messages", sign("tertiary", "https://h.example.com/twilio/messages"), params, false},
		{"tampered body", "https://h.example.com/twilio/messages", sign("primary", "https://h.example.com/twilio/messages"),
			url.Values{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "Body": {"hi!"}}, false},
		{"added parameter", "https://h.example.com/twilio/messages", sign("primary", "https://h.example.com/twilio/messages"),
			url.Values{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "Body": {"hi"}, "X": {""}}, false},
		{"missing signature", "https://h.example.com/twilio/messages", "", params, false},
		{"not base64", "https://h.example.com/twilio/messages", "!!!!!!!!!!!!!!!!!!!!!!!!!!!=", params, false},
		{"too short", "https://h.example.com/twilio/messages", "L/OH5YylLD5NRKLl", params, false},
		{"unpadded 28 characters", "https://h.example.com/twilio/messages", "L/OH5YylLD5NRKLltdqwSvS0BnUA", params, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := v.Valid(c.serverURL, twilio.FormFromValues(c.params), c.signature); got != c.want {
				t.Fatalf("Valid = %v, want %v", got, c.want)
			}
		})
	}
}

func TestNewValidatorRefusesEmptyToken(t *testing.T) {
	t.Parallel()
	if _, err := twilio.NewValidator("", "secondary"); err == nil {
		t.Fatal("NewValidator accepted an empty primary token")
	}
}

func TestIsMessageSID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"SM0123456789abcdef0123456789abcdef":  true,
		"MM0123456789abcdef0123456789abcdef":  true,
		"MM0123456789ABCDEF0123456789abcdef":  false, // Twilio writes lower case; SMAB… would be a second message
		"SM0123456789abcdef0123456789abcdeF":  false,
		"SM0123456789abcdef0123456789abcde":   false, // 31 digits
		"SM0123456789abcdef0123456789abcdef0": false,
		"AC0123456789abcdef0123456789abcdef":  false,
		"SM0123456789abcdef0123456789abcdeg":  false,
		"sm0123456789abcdef0123456789abcdef":  false,
		"":                                    false,
	} {
		if got := twilio.IsMessageSID(s); got != want {
			t.Errorf("IsMessageSID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestIsAccountSID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"AC0123456789abcdef0123456789abcdef":  true,
		"AC0123456789ABCDEF0123456789abcdef":  false,
		"SM0123456789abcdef0123456789abcdef":  false,
		"AC0123456789abcdef0123456789abcde":   false,
		"AC0123456789abcdef0123456789abcdef0": false,
		"":                                    false,
	} {
		if got := twilio.IsAccountSID(s); got != want {
			t.Errorf("IsAccountSID(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestOnlyTheCanonicalEncodingValidates: a 20-byte MAC is 27 base64
// characters and a pad; the 27th carries two unused bits, so four header
// strings decode to the same bytes. Only the one Twilio sends is accepted.
func TestOnlyTheCanonicalEncodingValidates(t *testing.T) {
	t.Parallel()
	const u = "https://h.example.com/twilio/messages"
	params := url.Values{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "Body": {"hi"}}
	v, err := twilio.NewValidator("token", "")
	if err != nil {
		t.Fatal(err)
	}
	sig := twilio.Sign("token", u, params)
	if !v.Valid(u, twilio.FormFromValues(params), sig) {
		t.Fatal("the canonical signature does not validate")
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(alphabet, sig[26])
	variants := 0
	for low := range 4 {
		c := alphabet[last&^3|low]
		if c == sig[26] {
			continue
		}
		variant := sig[:26] + string(c) + sig[27:]
		if b, err := base64.StdEncoding.DecodeString(variant); err != nil || base64.StdEncoding.EncodeToString(b) != sig {
			t.Fatalf("%q is not a variant of %q", variant, sig)
		}
		variants++
		if v.Valid(u, twilio.FormFromValues(params), variant) {
			t.Errorf("non-canonical %q validates like %q", variant, sig)
		}
	}
	if variants != 3 {
		t.Fatalf("built %d variants, want 3", variants)
	}
}

// FuzzValid checks that no URL, body or signature makes Valid panic, and
// that what Sign produces, Valid accepts.
func FuzzValid(f *testing.F) {
	for _, c := range loadVectors(f) {
		f.Add(c.Token, c.URL, c.Body, c.Signature)
	}
	f.Add("t", "https://[::1:443/x#", "a=%zz", "====")
	f.Fuzz(func(t *testing.T, token, u, body, sig string) {
		form, err := twilio.ParseForm([]byte(body))
		if err != nil {
			return
		}
		params, err := url.ParseQuery(body)
		if err != nil {
			t.Fatalf("ParseForm accepted what ParseQuery refuses: %v", err)
		}
		v, err := twilio.NewValidator(token, "")
		if err != nil {
			return
		}
		v.Valid(u, form, sig)
		if !v.Valid(u, form, twilio.Sign(token, u, params)) {
			t.Fatalf("Valid rejects Sign's own signature for %q %q", u, body)
		}
	})
}
