package twilio

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Param is one form parameter.
type Param struct {
	Name, Value string
}

// Form is a parsed application/x-www-form-urlencoded body, sorted by name and
// then value: the order in which Twilio signs parameters. A repeated name
// appears once per value.
type Form []Param

// ParseForm parses a form body as url.ParseQuery does (`&` separates
// parameters, `+` is a space, %XX an escaped byte, an empty segment is
// skipped, a semicolon is an error) but in one pass, into one slice and one
// string, because it runs for every webhook.
func ParseForm(body []byte) (Form, error) {
	n := bytes.Count(body, []byte("&")) + 1
	form := make(Form, 0, n)
	var text strings.Builder
	text.Grow(len(body)) // decoding never lengthens
	type span struct{ name, value [2]int }
	spans := make([]span, 0, n)
	for rest := body; len(rest) > 0; {
		var seg []byte
		seg, rest, _ = bytes.Cut(rest, []byte("&"))
		if len(seg) == 0 {
			continue
		}
		if bytes.IndexByte(seg, ';') >= 0 {
			return nil, errors.New("invalid semicolon separator in form")
		}
		name, value, _ := bytes.Cut(seg, []byte("="))
		var s span
		var err error
		if s.name, err = unescape(&text, name); err != nil {
			return nil, err
		}
		if s.value, err = unescape(&text, value); err != nil {
			return nil, err
		}
		spans = append(spans, s)
	}
	all := text.String()
	for _, s := range spans {
		form = append(form, Param{all[s.name[0]:s.name[1]], all[s.value[0]:s.value[1]]})
	}
	slices.SortFunc(form, func(a, b Param) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Value, b.Value))
	})
	return form, nil
}

// unescape appends the decoding of s to text and returns where it lies.
func unescape(text *strings.Builder, s []byte) ([2]int, error) {
	start := text.Len()
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			text.WriteByte(' ')
		case '%':
			if i+2 >= len(s) || !isHexByte(s[i+1]) || !isHexByte(s[i+2]) {
				end := min(i+3, len(s))
				return [2]int{}, fmt.Errorf("invalid URL escape %q", s[i:end])
			}
			text.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			text.WriteByte(c)
		}
	}
	return [2]int{start, text.Len()}, nil
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// FormFromValues returns values as a sorted Form.
func FormFromValues(values url.Values) Form {
	var form Form
	for name, vs := range values {
		for _, v := range vs {
			form = append(form, Param{name, v})
		}
	}
	slices.SortFunc(form, func(a, b Param) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Value, b.Value))
	})
	return form
}

// Get returns the value of the first parameter called name, or "".
func (f Form) Get(name string) string {
	i, found := slices.BinarySearchFunc(f, name, func(p Param, name string) int { return strings.Compare(p.Name, name) })
	if !found {
		return ""
	}
	return f[i].Value
}
