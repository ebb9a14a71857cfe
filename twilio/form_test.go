package twilio_test

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"inbox/twilio"
)

func TestParseForm(t *testing.T) {
	t.Parallel()
	form, err := twilio.ParseForm([]byte("To=%2B1555&Body=Ol%C3%A1+mundo&&Empty=&Bare&Body=again&A=1"))
	if err != nil {
		t.Fatal(err)
	}
	want := twilio.Form{{"A", "1"}, {"Bare", ""}, {"Body", "Olá mundo"}, {"Body", "again"}, {"Empty", ""}, {"To", "+1555"}}
	if !reflect.DeepEqual(form, want) {
		t.Fatalf("ParseForm = %q, want %q", form, want)
	}
	for _, bad := range []string{"a=%zz", "a=%2", "a=%", "%g0=1", "a=1;b=2"} {
		if _, err := twilio.ParseForm([]byte(bad)); err == nil {
			t.Errorf("ParseForm(%q) accepted it", bad)
		}
	}
}

// FuzzParseFormMatchesParseQuery holds ParseForm to the standard library:
// the same bodies accepted, and the same parameters out of them.
func FuzzParseFormMatchesParseQuery(f *testing.F) {
	for _, s := range []string{"a=1&b=2", "a=%41&a=%zz", "+=+&&=&x", "a;b=1", "%C3%A1=%F0%9F%9A%9A", "a=%", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if strings.Count(body, "&") >= 10000 {
			return // the standard library's own parameter limit
		}
		form, err := twilio.ParseForm([]byte(body))
		values, stdErr := url.ParseQuery(body)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("ParseForm error %v, ParseQuery error %v", err, stdErr)
		}
		if err != nil {
			return
		}
		if want := twilio.FormFromValues(values); !(len(form) == 0 && len(want) == 0) && !reflect.DeepEqual(form, want) {
			t.Fatalf("ParseForm = %q, ParseQuery = %q", form, want)
		}
	})
}
