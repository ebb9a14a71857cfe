package message

import (
	"database/sql/driver"
	"slices"
	"unicode/utf8"
)

// Value gives pgx the metadata's JSON directly: pgx prefers a
// driver.Valuer to a json.Marshaler, and passes the bytes through, where a
// json.Marshaler goes through json.Marshal, which re-validates and copies.
func (m Metadata) Value() (driver.Value, error) { return m.MarshalJSON() }

// Value gives pgx the media list's JSON directly, as Metadata.Value does.
func (l MediaList) Value() (driver.Value, error) { return l.MarshalJSON() }

// MarshalJSON encodes l as encoding/json would, without reflection; an
// empty or nil list is [], as the column's default.
func (l MediaList) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+len(l)*160)
	b = append(b, '[')
	for i, m := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"url":`...)
		b = appendString(b, m.URL)
		b = append(b, `,"content_type":`...)
		b = appendString(b, m.ContentType)
		if m.DownloadURL != "" {
			b = append(b, `,"download_url":`...)
			b = appendString(b, m.DownloadURL)
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// MarshalJSON encodes m as encoding/json would (keys sorted, the same
// escaping, invalid UTF-8 replaced by U+FFFD) without reflection: pgx
// encodes the metadata of every webhook, and through reflection that was
// 7.5% of the service's CPU under load.
func (m Metadata) MarshalJSON() ([]byte, error) {
	size := 80 + len(m.MessageSID) + len(m.IdempotencyToken) + len(m.Source)
	for k, v := range m.Params {
		size += len(k) + len(v) + 8
	}
	b := make([]byte, 0, size)
	b = append(b, `{"message_sid":`...)
	b = appendString(b, m.MessageSID)
	if m.IdempotencyToken != "" {
		b = append(b, `,"idempotency_token":`...)
		b = appendString(b, m.IdempotencyToken)
	}
	if m.Source != "" {
		b = append(b, `,"source":`...)
		b = appendString(b, m.Source)
	}
	b = append(b, `,"params":`...)
	b = m.Params.appendJSON(b)
	return append(b, '}'), nil
}

// Value gives pgx the parameters' JSON directly, as Metadata.Value does.
// Params has no MarshalJSON on purpose: encoding/json's own encoding of it
// is the reference the hand-written encoders are tested against.
func (p Params) Value() (driver.Value, error) { return p.appendJSON(nil), nil }

func (p Params) appendJSON(b []byte) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, p[k])
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it (including <, > and &, and U+2028 and U+2029).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
