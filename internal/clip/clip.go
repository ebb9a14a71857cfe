// Package clip shortens text a client or a remote API sent, before it is
// quoted back in an error, a problem detail or a log line: the one rule
// for every edge, so a megabyte of header or form field can never become a
// megabyte of log, and what is quoted is always valid UTF-8.
package clip

import (
	"strings"
	"unicode/utf8"
)

// Max is the most bytes of the original Clip keeps.
const Max = 64

// Clip returns s when it is at most Max bytes of valid UTF-8; otherwise its
// first Max bytes, cut at a character's boundary and followed by "…",
// with any invalid UTF-8 replaced by "?".
func Clip(s string) string { return To(s, Max) }

// To is Clip with n bytes kept instead of Max: for text kept longer than a
// quote, such as the last error of a delivery.
func To(s string, n int) string {
	if len(s) <= n && utf8.ValidString(s) {
		return s
	}
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
