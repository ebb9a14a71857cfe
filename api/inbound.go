package api

import (
	"context"
	"net/http"
	"strconv"

	"inbox/message"
	"inbox/metrics"
	"inbox/store"
	"inbox/twilio"
)

// emptyTwiML tells Twilio the message was received and needs no reply. An
// empty body has produced error 11200 on inbound webhooks; plain text would
// be sent back to the sender as a message.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// handleInboundMessage answers POST /twilio/messages, the webhook Twilio calls
// for every inbound SMS, MMS and WhatsApp message. A signed, well-formed
// delivery is stored once, however often it arrives; the first and every
// repeat get 200 with empty TwiML, so Twilio neither retries nor replies.
// The message's processing job, when the store enqueues, commits with it.
// Its deadline (withDeadline) bounds the account's lookup and the insert
// together.
func handleInboundMessage(forms *formReader, st *store.Store, sink *sinkUse, dups Duplicates) http.Handler {
	return handle(func(w http.ResponseWriter, r *http.Request) error {
		setDelivery(r.Context(), metrics.KindMessage)
		form, err := forms.read(w, r)
		if err != nil {
			return err
		}
		token, tokenOK := idempotencyToken(r.Header.Get(twilio.IdempotencyHeader))
		msg, err := inboundParams(form, token)
		if err != nil {
			return err
		}
		ctx, sid := r.Context(), msg.Metadata.MessageSID
		setSID(ctx, sid)
		logger := requestLogger(ctx)
		logger.DebugContext(ctx, "inbound message", "sid", sid, "body", msg.Body)
		if !tokenOK {
			logger.DebugContext(ctx, "idempotency token ignored: not 1 to 128 printable ASCII characters", "sid", sid)
		}

		id, inserted, err := st.InsertInboundMessage(ctx, msg)
		switch {
		case err != nil:
			return storeError(err)
		}
		databaseReached(ctx)
		if inserted {
			setResult(ctx, metrics.ResultNew)
			logger.InfoContext(ctx, "stored new message", "id", id, "sid", sid)
		} else {
			setResult(ctx, metrics.ResultDuplicate)
			if dups != nil {
				dups.Duplicate(sid, message.SourceWebhook)
			}
			logger.InfoContext(ctx, "duplicate delivery ignored", "sid", sid)
			if sink.inUse(ctx) {
				enrichEventStored(ctx, st, msg)
			}
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.Write([]byte(emptyTwiML))
		return nil
	})
}

// enrichEventStored gives a message an Event Streams event stored first
// what only its webhook carries: media URLs, WhatsApp fields, every other
// parameter (docs/event-streams.md). A row a webhook or a sweep stored is
// left alone. Called for a repeat only while a sink is in use (sinkUse). The message is stored either way: a failure is logged, and
// the webhook still answered 200.
func enrichEventStored(ctx context.Context, st *store.Store, msg message.Inbound) {
	changed, err := st.EnrichMessage(ctx, store.Enrichment{SID: msg.Metadata.MessageSID, Params: msg.Metadata.Params, Media: msg.Media,
		OnlySource: message.SourceEventStream})
	logger := requestLogger(ctx)
	switch {
	case err != nil:
		logger.WarnContext(ctx, "could not add the webhook's parameters to the message its event stored", "sid", msg.Metadata.MessageSID, "err", err)
	case changed:
		logger.InfoContext(ctx, "the webhook's parameters and media added to the message its event stored", "sid", msg.Metadata.MessageSID)
	}
}

// Bounds on Twilio's counts: it sends at most 10 media and 10 segments; the
// headroom keeps a future increase from being refused.
const (
	maxMedia    = 100
	maxSegments = 1000
)

// inboundParams turns a verified inbound-message form into the message to
// store. Beyond formParams' checks it refuses (400) counts that are not
// small non-negative integers and NumMedia without its MediaUrlN. Every
// parameter is kept, as sent, in the metadata.
func inboundParams(form twilio.Form, idempotencyToken string) (message.Inbound, error) {
	params, sid, err := formParams(form)
	if err != nil {
		return message.Inbound{}, err
	}
	numMedia, err := count(params, "NumMedia", 0, maxMedia)
	if err != nil {
		return message.Inbound{}, err
	}
	numSegments, err := count(params, "NumSegments", 1, maxSegments)
	if err != nil {
		return message.Inbound{}, err
	}
	media := make([]message.Media, numMedia)
	var key [32]byte // "MediaContentType" and up to 3 digits, built without allocating
	for i := range media {
		u, ok := params[string(strconv.AppendInt(append(key[:0], "MediaUrl"...), int64(i), 10))]
		if !ok || u == "" {
			return message.Inbound{}, refuse(http.StatusBadRequest, RefusalMediaURLMissing, "NumMedia is %d but MediaUrl%d is missing", numMedia, i)
		}
		ct := params[string(strconv.AppendInt(append(key[:0], "MediaContentType"...), int64(i), 10))]
		media[i] = message.Media{URL: u, ContentType: ct}
	}
	return message.Inbound{
		AccountSID:          params["AccountSid"],
		MessagingServiceSID: params.Optional("MessagingServiceSid"),
		From:                params["From"],
		To:                  params["To"],
		Body:                params["Body"],
		NumMedia:            int32(numMedia),
		NumSegments:         int32(numSegments),
		Media:               media,
		Metadata: message.Metadata{
			MessageSID:       sid,
			IdempotencyToken: idempotencyToken,
			Source:           message.SourceWebhook,
			Params:           params,
		},
	}, nil
}

// maxIdempotencyToken bounds the unsigned I-Twilio-Idempotency-Token kept in
// metadata: Twilio's are a few dozen characters.
const maxIdempotencyToken = 128

// idempotencyToken returns the header's value when it is 1 to 128 printable
// ASCII characters, else "" and false: the header is not signed, so anyone
// can set it, and it is kept for tracing only.
func idempotencyToken(h string) (string, bool) {
	if h == "" {
		return "", true
	}
	if len(h) > maxIdempotencyToken {
		return "", false
	}
	for i := 0; i < len(h); i++ {
		if h[i] < 0x21 || h[i] > 0x7e {
			return "", false
		}
	}
	return h, true
}
