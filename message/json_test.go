package message_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"inbox/message"
)

// reference encodes m with encoding/json's reflection, which the
// hand-written MarshalJSON must match byte for byte.
type reference struct {
	MessageSID       string            `json:"message_sid"`
	IdempotencyToken string            `json:"idempotency_token,omitempty"`
	Params           map[string]string `json:"params"`
}

func check(t *testing.T, m message.Metadata) {
	t.Helper()
	got, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(reference{m.MessageSID, m.IdempotencyToken, m.Params})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalJSON:\n got %s\nwant %s", got, want)
	}
}

func TestMetadataMarshalJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	check(t, message.Metadata{MessageSID: "SM1", Params: message.Params{}})
	check(t, message.Metadata{MessageSID: "SM1"})
	check(t, message.Metadata{MessageSID: "SM1", IdempotencyToken: "t", Params: message.Params{
		"Body": "Olá \"aspas\" \\ <tags> & \t\n\r\x00\x1f\x7f 🚚 \u2028\u2029 \xff\xfe", "B": "", "a": "1", "\x01k": "v",
	}})
}

func FuzzMetadataMarshalJSON(f *testing.F) {
	f.Add("SM1", "", "Body", "hi", "X", "\xff<\u2028>")
	f.Fuzz(func(t *testing.T, sid, token, k1, v1, k2, v2 string) {
		check(t, message.Metadata{MessageSID: sid, IdempotencyToken: token, Params: message.Params{k1: v1, k2: v2}})
	})
}

func TestMediaListMarshalJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, l := range []message.MediaList{
		{},
		{{URL: "https://api.twilio.com/x?a=1&b=<2>", ContentType: "image/jpeg"}, {URL: "\xff\u2028", ContentType: ""}},
	} {
		got, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal([]message.Media(l))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("MarshalJSON:\n got %s\nwant %s", got, want)
		}
	}
	if got, _ := json.Marshal(message.MediaList(nil)); string(got) != "[]" {
		t.Fatalf("nil list = %s, want [] like the column default", got)
	}
}

func TestValueIsTheJSON(t *testing.T) {
	t.Parallel()
	m := message.Metadata{MessageSID: "SM1", Params: message.Params{"Body": "hi"}}
	v, err := m.Value()
	if err != nil || string(v.([]byte)) != `{"message_sid":"SM1","params":{"Body":"hi"}}` {
		t.Fatalf("Value = %s, %v", v, err)
	}
}
