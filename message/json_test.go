package message_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"inbox/message"
)

// plainMetadata has Metadata's fields, tags and field types but none of its
// methods, so encoding/json encodes it by reflection: the reference the
// hand-written MarshalJSON must match byte for byte. A field added to
// Metadata appears here too, so an encoder that forgets it fails the test.
type plainMetadata message.Metadata

func check(t *testing.T, m message.Metadata) {
	t.Helper()
	got, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(plainMetadata(m))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalJSON:\n got %s\nwant %s", got, want)
	}
	v, err := m.Params.Value()
	if err != nil {
		t.Fatal(err)
	}
	want, err = json.Marshal(map[string]string(m.Params))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.([]byte), want) {
		t.Fatalf("Params.Value:\n got %s\nwant %s", v, want)
	}
}

func TestMetadataMarshalJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	check(t, message.Metadata{MessageSID: "SM1", Params: message.Params{}})
	check(t, message.Metadata{MessageSID: "SM1"})
	check(t, message.Metadata{MessageSID: "SM1", Source: message.SourceReconcile, Params: message.Params{"Body": "hi"}})
	check(t, message.Metadata{MessageSID: "SM1", IdempotencyToken: "t", Source: "we\"bhook", Params: message.Params{
		"Body": "Olá \"aspas\" \\ <tags> & \t\n\r\x00\x1f\x7f 🚚 \u2028\u2029 \xff\xfe", "B": "", "a": "1", "\x01k": "v",
	}})
}

func FuzzMetadataMarshalJSON(f *testing.F) {
	f.Add("SM1", "", "webhook", "Body", "hi", "X", "\xff<\u2028>")
	f.Fuzz(func(t *testing.T, sid, token, source, k1, v1, k2, v2 string) {
		check(t, message.Metadata{MessageSID: sid, IdempotencyToken: token, Source: source, Params: message.Params{k1: v1, k2: v2}})
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
		// []message.Media has no methods, and Media none either.
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
