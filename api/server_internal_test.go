package api

import (
	"strings"
	"testing"
)

func TestParsePublicBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com":          "https://hooks.example.com",
		"https://hooks.example.com/":         "https://hooks.example.com",
		"http://127.0.0.1:8080/prefix/":      "http://127.0.0.1:8080/prefix",
		"https://hooks.example.com/twilio/x": "https://hooks.example.com/twilio/x",
	} {
		if got, err := ParsePublicBaseURL(in); err != nil || got != want {
			t.Errorf("ParsePublicBaseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"":                               "is not set",
		"ftp://hooks.example.com":        "scheme must be http or https",
		"https://":                       "no host",
		"https://u:p@hooks.example.com":  "give only scheme",
		"https://hooks.example.com/?x=1": "give only scheme",
		"https://hooks.example.com#rc=3": "give only scheme",
		"https://hooks.example.com/twilio/status": "ends in /twilio/status",
		"https://hooks.example.com/readyz/":       "ends in /readyz",
	} {
		if _, err := ParsePublicBaseURL(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePublicBaseURL(%q): %v, want %q", in, err, want)
		}
	}
}
