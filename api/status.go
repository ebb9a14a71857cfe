package api

import (
	"net/http"

	"inbox/internal/clip"
	"inbox/message"
	"inbox/metrics"
	"inbox/store"
	"inbox/twilio"
)

// handleStatusCallback answers POST /twilio/status, the StatusCallback Twilio
// posts as an outbound message's delivery status changes. Callbacks repeat
// and arrive out of order, so each distinct (sid, status) is stored once as
// an event, and the message's current status only moves forward. A new
// status, a repeat and a regression all get 200 with an empty body: Twilio
// needs nothing more, and a retry would change nothing. Its deadline
// (withDeadline) bounds the account's lookup and the write together.
func handleStatusCallback(forms *formReader, st *store.Store) http.Handler {
	return handle(func(w http.ResponseWriter, r *http.Request) error {
		setDelivery(r.Context(), metrics.KindStatus)
		form, err := forms.read(w, r)
		if err != nil {
			return err
		}
		cb, err := statusParams(form)
		if err != nil {
			return err
		}
		ctx := r.Context()
		setSID(ctx, cb.MessageSID)
		res, err := st.RecordStatus(ctx, cb)
		if err != nil {
			return storeError(err)
		}
		databaseReached(ctx)
		logger := requestLogger(ctx)
		switch {
		case res.NewEvent:
			setResult(ctx, metrics.ResultNew)
			logger.InfoContext(ctx, "status recorded", "sid", cb.MessageSID, "status", cb.Status, "current", res.Moved)
		default:
			setResult(ctx, metrics.ResultDuplicate)
			logger.InfoContext(ctx, "duplicate status ignored", "sid", cb.MessageSID, "status", cb.Status)
		}
		w.WriteHeader(http.StatusOK)
		return nil
	})
}

// statusParams turns a verified status callback into what it says. Beyond
// what every webhook must be (see formParams), it needs a MessageStatus of
// lower-case letters and underscores; a status Twilio adds later is stored,
// and ranks below every known one.
func statusParams(form twilio.Form) (message.StatusCallback, error) {
	params, sid, err := formParams(form)
	if err != nil {
		return message.StatusCallback{}, err
	}
	status := params["MessageStatus"]
	if !twilio.IsStatus(status) {
		return message.StatusCallback{}, refuse(http.StatusBadRequest, RefusalMessageStatusInvalid, "MessageStatus %q is not a status (lower-case letters and _)", clip.Clip(status))
	}
	return message.StatusCallback{
		MessageSID:          sid,
		Status:              status,
		ErrorCode:           params.Optional("ErrorCode"),
		AccountSID:          params["AccountSid"],
		MessagingServiceSID: params.Optional("MessagingServiceSid"),
		From:                params["From"],
		To:                  params["To"],
		Params:              params,
	}, nil
}
