package store_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"inbox/db"
	"inbox/internal/dbtest"
	"inbox/message"
	"inbox/store"
)

func setup(t *testing.T, maxConns int32) *store.Store {
	t.Helper()
	return store.New(dbtest.Pool(t, maxConns))
}

// newSID returns a fresh message sid of Twilio's shape.
func newSID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "SM" + hex.EncodeToString(b)
}

// smsParams builds the insert parameters of a plain inbound SMS, with the
// form parameters Twilio sends kept in metadata.
func smsParams(sid, body string) db.InsertInboundMessageParams {
	params := map[string]string{
		"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid,
		"AccountSid": "AC0123456789abcdef0123456789abcdef",
		"From":       "+5511912340000", "To": "+5511987650000",
		"Body": body, "NumMedia": "0", "NumSegments": "1",
		"SmsStatus": "received", "ApiVersion": "2010-04-01",
	}
	return db.InsertInboundMessageParams{
		AccountSID:  params["AccountSid"],
		FromAddress: params["From"],
		ToAddress:   params["To"],
		Body:        body,
		NumSegments: 1,
		Media:       []message.Media{},
		Metadata:    message.Metadata{MessageSID: sid, Params: params},
	}
}

func TestInsertInboundMessageNewThenDuplicate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t, 4)
	sid := newSID(t)

	id, inserted, err := s.InsertInboundMessage(ctx, smsParams(sid, "first"))
	if err != nil || !inserted || id <= 0 {
		t.Fatalf("first insert = (%d, %v, %v), want (id > 0, true, nil)", id, inserted, err)
	}
	before, err := s.GetMessageBySID(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}

	// A redelivery that differs (a proxy rewrote the body) must not touch the row.
	id2, inserted, err := s.InsertInboundMessage(ctx, smsParams(sid, "second"))
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
	if after.ID != id || after.Body != "first" || after.Direction != message.Inbound || after.Status != "received" {
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
	sid := newSID(t)
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
			id, ok, err := s.InsertInboundMessage(ctx, smsParams(sid, "same message"))
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

	mms := smsParams(newSID(t), "see attached")
	mms.Metadata.MessageSID = "MM" + mms.Metadata.MessageSID[2:]
	mms.NumMedia = 2
	mms.Media = []message.Media{
		{URL: "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", ContentType: "image/jpeg"},
		{URL: "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2", ContentType: "application/pdf"},
	}
	svc := "MG0123456789abcdef0123456789abcdef"
	mms.MessagingServiceSID = &svc

	whatsapp := smsParams(newSID(t), unicode)
	whatsapp.FromAddress = "whatsapp:+5511912340000"
	whatsapp.ToAddress = "whatsapp:+14155238886"
	for k, v := range map[string]string{
		"ProfileName": "Zoë 🌻", "WaId": "5511912340000", "Forwarded": "true",
		"ButtonPayload": "yes", "Latitude": "-23.5505", "Longitude": "-46.6333",
		"ReferralCtwaClid": "ARAkLk", "SomethingTwilioAddsTomorrow": "",
	} {
		whatsapp.Metadata.Params[k] = v
	}
	whatsapp.Metadata.IdempotencyToken = "abc-123"

	cases := map[string]db.InsertInboundMessageParams{
		"unicode":                    smsParams(newSID(t), unicode),
		"1600 characters":            smsParams(newSID(t), long),
		"sql and control characters": smsParams(newSID(t), "tab\tnewline\r\n'; DROP TABLE messages; --"),
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
			want := db.Message{
				ID: got.ID, Direction: "inbound", AccountSID: in.AccountSID,
				MessagingServiceSID: in.MessagingServiceSID, FromAddress: in.FromAddress,
				ToAddress: in.ToAddress, Body: in.Body, NumMedia: in.NumMedia,
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
	_, err := setup(t, 2).GetMessageBySID(t.Context(), newSID(t))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}
