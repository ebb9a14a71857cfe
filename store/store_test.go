package store_test

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/message"
	"inbox/store"
)

func setup(t *testing.T, maxConns int32) *store.Store {
	t.Helper()
	return store.New(dbtest.Pool(t, maxConns))
}

// sms is the fixture message with sid and body.
func sms(sid, body string) message.Inbound {
	m := fixture.Inbound(sid)
	m.Body, m.Metadata.Params["Body"] = body, body
	return m
}

func TestInsertInboundMessageNewThenDuplicate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, 4)
	sid := fixture.SID()

	id, inserted, err := s.InsertInboundMessage(ctx, sms(sid, "first"))
	if err != nil || !inserted || id <= 0 {
		t.Fatalf("first insert = (%d, %v, %v), want (id > 0, true, nil)", id, inserted, err)
	}
	before, err := s.GetMessageBySID(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}

	// A redelivery that differs (a proxy rewrote the body) must not touch the row.
	id2, inserted, err := s.InsertInboundMessage(ctx, sms(sid, "second"))
	if err != nil || inserted || id2 != 0 {
		t.Fatalf("duplicate insert = (%d, %v, %v), want (0, false, nil)", id2, inserted, err)
	}
	after, err := s.GetMessageBySID(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("first row changed by a duplicate:\nbefore %+v\nafter  %+v", before, after)
	}
	if after.ID != id || after.Body != "first" || after.Direction != message.DirectionInbound || after.Status != "received" {
		t.Fatalf("stored row = %+v, want id %d, body first, inbound, received", after, id)
	}
	if n, err := s.CountMessagesBySIDs(ctx, []string{sid}); err != nil || n != 1 {
		t.Fatalf("rows for sid = %d, %v; want 1", n, err)
	}
}

func TestInsertInboundMessageConcurrentSameSID(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Enough connections that the inserts really race inside PostgreSQL,
	// not in the pool's queue; fewer than a default max_connections of 100
	// so parallel tests still fit.
	s := setup(t, 40)
	sid := fixture.SID()
	const n = 200

	var (
		wg                        sync.WaitGroup
		mu                        sync.Mutex
		inserted, duplicate, errs int
		ids                       []int64
	)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			id, ok, err := s.InsertInboundMessage(ctx, sms(sid, "same message"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs++
				t.Errorf("goroutine %d: %v", i, err)
			case ok:
				inserted++
				ids = append(ids, id)
			default:
				duplicate++
			}
		}()
	}
	close(start)
	wg.Wait()

	if inserted != 1 || duplicate != n-1 || errs != 0 {
		t.Fatalf("inserted %d, duplicate %d, errors %d; want 1, %d, 0", inserted, duplicate, errs, n-1)
	}
	if count, err := s.CountMessagesBySIDs(ctx, []string{sid}); err != nil || count != 1 {
		t.Fatalf("rows for sid = %d, %v; want 1", count, err)
	}
	m, err := s.GetMessageBySID(ctx, sid)
	if err != nil || m.ID != ids[0] {
		t.Fatalf("stored row id = %d (%v), want the one reported inserted, %d", m.ID, err, ids[0])
	}
}

func TestMessagesRoundTripExactly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, 4)

	long := strings.Repeat("ação 🚚 !", 200) // Twilio's 1600-character maximum
	unicode := "Olá! Pedido #42 está pronto? 🚚 100% + \"aspas\" & <tags> 中文 \u200d 👩‍👩‍👧"

	mms := sms(fixture.SID(), "see attached")
	mms.Metadata.MessageSID = "MM" + mms.Metadata.MessageSID[2:]
	mms.NumMedia = 2
	mms.Media = []message.Media{
		{URL: "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", ContentType: "image/jpeg"},
		{URL: "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2", ContentType: "application/pdf"},
	}
	svc := "MG0123456789abcdef0123456789abcdef"
	mms.MessagingServiceSID = &svc

	whatsapp := sms(fixture.SID(), unicode)
	whatsapp.From = "whatsapp:+5511912340000"
	whatsapp.To = "whatsapp:+14155238886"
	for k, v := range map[string]string{
		"ProfileName": "Zoë 🌻", "WaId": "5511912340000", "Forwarded": "true",
		"ButtonPayload": "yes", "Latitude": "-23.5505", "Longitude": "-46.6333",
		"ReferralCtwaClid": "ARAkLk", "SomethingTwilioAddsTomorrow": "",
	} {
		whatsapp.Metadata.Params[k] = v
	}
	whatsapp.Metadata.IdempotencyToken = "abc-123"

	cases := map[string]message.Inbound{
		"unicode":                    sms(fixture.SID(), unicode),
		"1600 characters":            sms(fixture.SID(), long),
		"sql and control characters": sms(fixture.SID(), "tab\tnewline\r\n'; DROP TABLE messages; --"),
		"mms with media":             mms,
		"whatsapp":                   whatsapp,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, inserted, err := s.InsertInboundMessage(ctx, in)
			if err != nil || !inserted {
				t.Fatalf("insert = %v, %v", inserted, err)
			}
			got, err := s.GetMessageBySID(ctx, in.Metadata.MessageSID)
			if err != nil {
				t.Fatal(err)
			}
			want := message.Message{
				ID: got.ID, Direction: "inbound", AccountSID: in.AccountSID,
				MessagingServiceSID: in.MessagingServiceSID, From: in.From,
				To: in.To, Body: in.Body, NumMedia: in.NumMedia,
				NumSegments: in.NumSegments, Media: in.Media, Status: "received",
				ReceivedAt: got.ReceivedAt, Metadata: in.Metadata,
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestGetMessageBySIDNotFound(t *testing.T) {
	t.Parallel()
	_, err := setup(t, 2).GetMessageBySID(t.Context(), fixture.SID())
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

// TestEveryInboundFieldIsStored: every field of message.Inbound, each set
// to a value of its own, reads back as stored from the field of
// message.Message of the same name. A field added to Inbound and not
// written by the store's one insert (or with no column to read it back
// from) fails here, instead of being stored as zero without an error.
func TestEveryInboundFieldIsStored(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, 2)
	s := store.New(pool)
	in := fixture.Inbound(fixture.SID())
	v := reflect.ValueOf(&in).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.String:
			f.SetString("value of " + name)
		case reflect.Int32:
			f.SetInt(int64(10 + i))
		case reflect.Pointer: // *string
			text := "value of " + name
			f.Set(reflect.ValueOf(&text))
		case reflect.Slice: // MediaList
			f.Set(reflect.ValueOf(message.MediaList{{URL: "https://media.example/" + name, ContentType: "image/png"}}))
		case reflect.Struct: // Metadata: the fixture's, with a sid of its own
		default:
			t.Fatalf("Inbound.%s is a %s: teach this test to set one", name, f.Kind())
		}
	}
	if _, inserted, err := s.InsertInboundMessage(t.Context(), in); err != nil || !inserted {
		t.Fatalf("insert: %v %v", inserted, err)
	}
	// Alone, and in a batch with processing on (its inserts without a job
	// each, then InsertBatchJob).
	batch := []message.Inbound{in, in}
	for i := range batch {
		batch[i].Metadata.MessageSID = fixture.SID()
	}
	if _, err := store.NewWith(pool, store.Options{JobAttempts: 3}).InsertInboundMessages(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	for _, want := range append(batch, in) {
		got, err := s.GetMessageBySID(t.Context(), want.Metadata.MessageSID)
		if err != nil {
			t.Fatal(err)
		}
		out, w := reflect.ValueOf(got), reflect.ValueOf(want)
		for i := range w.NumField() {
			name := w.Type().Field(i).Name
			stored := out.FieldByName(name)
			if !stored.IsValid() {
				t.Errorf("message.Message has no field %s to read Inbound.%s back from", name, name)
				continue
			}
			if !reflect.DeepEqual(stored.Interface(), w.Field(i).Interface()) {
				t.Errorf("Inbound.%s = %v was stored as %v", name, w.Field(i).Interface(), stored.Interface())
			}
		}
	}
}
