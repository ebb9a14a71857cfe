package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"inbox/db"
	"inbox/message"
	"inbox/twilio"
)

// emptyTwiML tells Twilio the message was received and needs no reply. An
// empty body has produced error 11200 on inbound webhooks; plain text would
// be sent back to the sender as a message.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// IdempotencyHeader is the header in which Twilio distinguishes its retries.
// It is kept in metadata for tracing; the message sid stays the key.
const IdempotencyHeader = "I-Twilio-Idempotency-Token"

// handleInboundMessage answers POST /twilio/messages, the webhook Twilio calls
// for every inbound SMS, MMS and WhatsApp message. A signed, well-formed
// delivery is stored once, however often it arrives; the first and every
// repeat get 200 with empty TwiML, so Twilio neither retries nor replies.
// OnNewMessage runs only for the delivery that stored the message.
func handleInboundMessage(cfg Config) http.Handler {
	return handle(func(w http.ResponseWriter, r *http.Request) error {
		form, err := readSignedForm(cfg, w, r)
		if err != nil {
			return err
		}
		msg, err := inboundParams(form, r.Header.Get(IdempotencyHeader))
		if err != nil {
			return err
		}
		ctx, sid := r.Context(), msg.Metadata.MessageSID
		setSID(ctx, sid)
		logger := requestLogger(ctx)
		logger.DebugContext(ctx, "inbound message", "sid", sid, "body", msg.Body)

		dbCtx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		id, inserted, err := cfg.Store.InsertInboundMessage(dbCtx, msg)
		cancel()
		if err != nil {
			return unavailable(err)
		}
		if inserted {
			logger.InfoContext(ctx, "stored new message", "id", id, "sid", sid)
			if cfg.OnNewMessage != nil {
				// The row is committed: the hook finishes even if Twilio hangs up.
				if err := cfg.OnNewMessage(context.WithoutCancel(ctx), id, msg); err != nil {
					logger.ErrorContext(ctx, "new-message hook failed", "id", id, "sid", sid, "err", err)
				}
			}
		} else {
			logger.InfoContext(ctx, "duplicate delivery ignored", "sid", sid)
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.Write([]byte(emptyTwiML))
		return nil
	})
}

// Bounds on Twilio's counts: it sends at most 10 media and 10 segments; the
// headroom keeps a future increase from being refused.
const (
	maxMedia    = 100
	maxSegments = 1000
)

// formParams checks what every webhook must be to be stored exactly and
// returns its parameters by name, and its MessageSid. It refuses (400) a
// repeated parameter, any name or value that is not valid UTF-8 or holds a
// NUL (PostgreSQL's text cannot), and a missing or malformed MessageSid.
func formParams(form twilio.Form) (params map[string]string, sid string, err error) {
	params = make(map[string]string, len(form))
	for i, p := range form {
		if i > 0 && p.Name == form[i-1].Name { // sorted: a repeat is adjacent
			return nil, "", refuse(http.StatusBadRequest, "parameter %q is repeated", truncate(strings.ToValidUTF8(p.Name, "?")))
		}
		if !storable(p.Name) || !storable(p.Value) {
			return nil, "", refuse(http.StatusBadRequest, "parameter %q is not valid UTF-8 text", truncate(strings.ToValidUTF8(p.Name, "?")))
		}
		params[p.Name] = p.Value
	}
	sid = params["MessageSid"]
	if sid == "" {
		return nil, "", refuse(http.StatusBadRequest, "MessageSid is missing")
	}
	if !twilio.IsMessageSID(sid) {
		return nil, "", refuse(http.StatusBadRequest, "MessageSid %q is not a message sid (SM or MM and 32 hex digits)", truncate(sid))
	}
	return params, sid, nil
}

// inboundParams turns a verified inbound-message form into the insert's
// parameters. Beyond formParams' checks it refuses (400) counts that are not
// small non-negative integers and NumMedia without its MediaUrlN. Every
// parameter is kept, as sent, in the metadata.
func inboundParams(form twilio.Form, idempotencyToken string) (db.InsertInboundMessageParams, error) {
	if !storable(idempotencyToken) {
		return db.InsertInboundMessageParams{}, refuse(http.StatusBadRequest, "%s is not valid UTF-8 text", IdempotencyHeader)
	}
	params, sid, err := formParams(form)
	if err != nil {
		return db.InsertInboundMessageParams{}, err
	}
	numMedia, err := count(params, "NumMedia", 0, maxMedia)
	if err != nil {
		return db.InsertInboundMessageParams{}, err
	}
	numSegments, err := count(params, "NumSegments", 1, maxSegments)
	if err != nil {
		return db.InsertInboundMessageParams{}, err
	}
	media := make([]message.Media, numMedia)
	var key [32]byte // "MediaContentType" and up to 3 digits, built without allocating
	for i := range media {
		u, ok := params[string(strconv.AppendInt(append(key[:0], "MediaUrl"...), int64(i), 10))]
		if !ok || u == "" {
			return db.InsertInboundMessageParams{}, refuse(http.StatusBadRequest, "NumMedia is %d but MediaUrl%d is missing", numMedia, i)
		}
		ct := params[string(strconv.AppendInt(append(key[:0], "MediaContentType"...), int64(i), 10))]
		media[i] = message.Media{URL: u, ContentType: ct}
	}
	var service *string
	if s := params["MessagingServiceSid"]; s != "" {
		service = &s
	}
	return db.InsertInboundMessageParams{
		AccountSID:          params["AccountSid"],
		MessagingServiceSID: service,
		FromAddress:         params["From"],
		ToAddress:           params["To"],
		Body:                params["Body"],
		NumMedia:            int32(numMedia),
		NumSegments:         int32(numSegments),
		Media:               media,
		Metadata: message.Metadata{
			MessageSID:       sid,
			IdempotencyToken: idempotencyToken,
			Params:           params,
		},
	}, nil
}

// count parses params[name] as an integer in [0, max], or def when absent.
func count(params map[string]string, name string, def, max int) (int, error) {
	s, ok := params[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return 0, refuse(http.StatusBadRequest, "%s %q is not a whole number from 0 to %d", name, truncate(s), max)
	}
	return n, nil
}

// storable reports whether s can be stored exactly in a text column and a
// jsonb string: valid UTF-8 (json.Marshal would silently replace the rest)
// and no NUL (PostgreSQL rejects it).
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
