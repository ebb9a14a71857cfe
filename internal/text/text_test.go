package text_test

import (
	"testing"

	"inbox/internal/text"
)

func TestOnlyPrintableTextPasses(t *testing.T) {
	for _, ok := range []string{"", "moving the orders app", "Zoë 🌻 — déjà vu", "مرحبا"} {
		if err := text.Printable(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"a\x00b", "line\nbreak", "\x1b[31mred", "abc\u202Edef", "\u2066isolate", "\xff"} {
		if text.Printable(bad) == nil {
			t.Errorf("%q passes", bad)
		}
	}
}
