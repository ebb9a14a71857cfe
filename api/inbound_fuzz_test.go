package api

import (
	"net/url"
	"strconv"
	"testing"
	"unicode/utf8"

	"inbox/twilio"
)

// FuzzInboundParams feeds arbitrary bodies through the form parser and
// inboundParams: they must never panic, and what they accept must be
// storable exactly: a valid sid, media matching NumMedia, and every
// parameter kept unchanged.
func FuzzInboundParams(f *testing.F) {
	f.Add("MessageSid=SM0123456789abcdef0123456789abcdef&Body=hi&NumMedia=0", "")
	f.Add("MessageSid=MM0123456789abcdef0123456789abcdef&NumMedia=1&MediaUrl0=https%3A%2F%2Fx&MediaContentType0=image%2Fpng", "tok")
	f.Add("MessageSid=SM0123456789abcdef0123456789abcdef&NumMedia=-1&NumSegments=99999999999999999999", "")
	f.Add("MessageSid=SM0123456789abcdef0123456789abcdef&Body=%FF%00&Body=x", "\xff")
	f.Add("a=1&a=2&=&&%zz", "")
	f.Fuzz(func(t *testing.T, body, token string) {
		raw, err := twilio.ParseForm([]byte(body))
		if err != nil {
			return
		}
		form, _ := url.ParseQuery(body)
		p, err := inboundParams(raw, token)
		if err != nil {
			return
		}
		if !twilio.IsMessageSID(p.Metadata.MessageSID) || p.Metadata.MessageSID != form.Get("MessageSid") {
			t.Fatalf("accepted sid %q", p.Metadata.MessageSID)
		}
		if int(p.NumMedia) != len(p.Media) || p.NumMedia < 0 || p.NumSegments < 0 {
			t.Fatalf("NumMedia %d with %d media, NumSegments %d", p.NumMedia, len(p.Media), p.NumSegments)
		}
		for i, m := range p.Media {
			if m.URL == "" || m.URL != form.Get("MediaUrl"+strconv.Itoa(i)) {
				t.Fatalf("media %d = %+v", i, m)
			}
		}
		if len(p.Metadata.Params) != len(form) {
			t.Fatalf("kept %d of %d parameters", len(p.Metadata.Params), len(form))
		}
		for k, v := range p.Metadata.Params {
			if len(form[k]) != 1 || form[k][0] != v || !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Fatalf("parameter %q = %q, form has %q", k, v, form[k])
			}
		}
		if p.Body != form.Get("Body") || p.From != form.Get("From") {
			t.Fatal("typed columns differ from the form")
		}
	})
}
