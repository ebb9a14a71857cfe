package api

import (
	"context"
	"net/http"

	"inbox/db"
	"inbox/message"
	"inbox/metrics"
	"inbox/twilio"
)

// handleStatusCallback answers POST /twilio/status, the StatusCallback Twilio
// posts as an outbound message's delivery status changes. Callbacks repeat
// and arrive out of order, so each distinct (sid, status) is stored once as
// an event, and the message's current status only moves forward. A new
// status, a repeat and a regression all get 200 with an empty body: Twilio
// needs nothing more, and a retry would change nothing.
func handleStatusCallback(cfg Config) http.Handler {
	return handle(func(w http.ResponseWriter, r *http.Request) error {
		setDelivery(r.Context(), metrics.KindStatus)
		form, err := readSignedForm(cfg, w, r)
		if err != nil {
			return err
		}
		ev, msg, err := statusParams(form)
		if err != nil {
			return err
		}
		ctx := r.Context()
		setSID(ctx, ev.MessageSID)
		dbCtx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		res, err := cfg.Store.RecordStatus(dbCtx, ev, msg)
		cancel()
		if err != nil {
			return storeError(err)
		}
		databaseReached(ctx)
		logger := requestLogger(ctx)
		switch {
		case res.NewEvent:
			setResult(ctx, metrics.ResultNew)
			logger.InfoContext(ctx, "status recorded", "sid", ev.MessageSID, "status", ev.Status, "current", res.Moved)
		default:
			setResult(ctx, metrics.ResultDuplicate)
			logger.InfoContext(ctx, "duplicate status ignored", "sid", ev.MessageSID, "status", ev.Status)
		}
		w.WriteHeader(http.StatusOK)
		return nil
	})
}

// statusParams turns a verified status callback into the event and the
// message upsert. Beyond what every webhook must be (see formParams), it
// needs a MessageStatus of lower-case letters and underscores; a status
// Twilio adds later is stored, and ranks below every known one.
func statusParams(form twilio.Form) (db.InsertStatusEventParams, db.UpsertOutboundStatusParams, error) {
	params, sid, err := formParams(form)
	if err != nil {
		return db.InsertStatusEventParams{}, db.UpsertOutboundStatusParams{}, err
	}
	status := params["MessageStatus"]
	if !twilio.IsStatus(status) {
		return db.InsertStatusEventParams{}, db.UpsertOutboundStatusParams{}, refuse(http.StatusBadRequest, "message_status_invalid", "MessageStatus %q is not a status (lower-case letters and _)", truncate(status))
	}
	errorCode := optional(params, "ErrorCode")
	ev := db.InsertStatusEventParams{MessageSID: sid, Status: status, ErrorCode: errorCode, Params: params}
	msg := db.UpsertOutboundStatusParams{
		AccountSID:          params["AccountSid"],
		MessagingServiceSID: optional(params, "MessagingServiceSid"),
		FromAddress:         params["From"],
		ToAddress:           params["To"],
		Status:              status,
		ErrorCode:           errorCode,
		Metadata:            message.Metadata{MessageSID: sid, Params: params},
	}
	return ev, msg, nil
}
