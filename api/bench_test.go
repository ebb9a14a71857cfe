package api

import (
	"context"
	"testing"

	"inbox/simulate"
	"inbox/twilio"
)

// benchRequest returns the body and signature of a realistic delivery.
func benchRequest(b *testing.B, kind simulate.Kind) (*formReader, string, string) {
	b.Helper()
	v, err := twilio.NewValidator("bench-token", "secondary-token")
	if err != nil {
		b.Fatal(err)
	}
	forms := &formReader{validator: v, publicBaseURL: "https://hooks.example.com", maxBody: DefaultMaxBodyBytes}
	form := simulate.InboundForm(kind, simulate.NewMessageSID(kind), 1)
	return forms, form.Encode(), twilio.Sign("bench-token", forms.publicBaseURL+"/twilio/messages", form)
}

// BenchmarkInboundCPUPath is the per-request work without the database:
// parse the form, check the signature, build the insert's parameters.
func BenchmarkInboundCPUPath(b *testing.B) {
	for _, kind := range simulate.Kinds {
		b.Run(string(kind), func(b *testing.B) {
			forms, body, sig := benchRequest(b, kind)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				form, _, err := forms.verify(context.Background(), []byte(body), "/twilio/messages", sig)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := inboundParams(form, "token"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseForm(b *testing.B) {
	_, body, _ := benchRequest(b, simulate.WhatsApp)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := twilio.ParseForm([]byte(body)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignatureCheck(b *testing.B) {
	forms, body, sig := benchRequest(b, simulate.WhatsApp)
	form, _ := twilio.ParseForm([]byte(body))
	u := forms.publicBaseURL + "/twilio/messages"
	b.ReportAllocs()
	for b.Loop() {
		if !forms.validator.Valid(u, form, sig) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkBuildInsertParams(b *testing.B) {
	_, body, _ := benchRequest(b, simulate.MMS)
	form, _ := twilio.ParseForm([]byte(body))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inboundParams(form, "token"); err != nil {
			b.Fatal(err)
		}
	}
}
