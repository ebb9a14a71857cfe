// Package text says whether what an operator typed is plain text: what
// notes and labels must be, since they are shown on the console, printed
// to terminals and written to logs, where a control character, an escape
// sequence or a bidirectional override would act, or disguise what the
// text says, rather than show.
package text

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Printable returns nil when s is valid UTF-8 of printable characters
// only (unicode.IsPrint: no control, format or bidirectional-override
// character, no NUL), else an error naming the first one that is not.
func Printable(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("it is not valid UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("it holds %U, which is not a printable character", r)
		}
	}
	return nil
}
