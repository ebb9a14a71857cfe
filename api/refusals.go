package api

// Refusal codes: the rule a refused request broke, in the log line of the
// refusal and as the reason label of inbox_refusals_total (no_route and
// method_not_allowed are not deliveries, and only logged).
// docs/troubleshooting.md says what each means and what to fix; a test
// holds the two to each other.
const (
	RefusalNoRoute              = "no_route"
	RefusalMethodNotAllowed     = "method_not_allowed"
	RefusalContentType          = "content_type"
	RefusalBodyTooLarge         = "body_too_large"
	RefusalBodyUnreadable       = "body_unreadable"
	RefusalTooManyParams        = "too_many_params"
	RefusalMalformedForm        = "malformed_form"
	RefusalSignatureMissing     = "signature_missing"
	RefusalAccountUnknown       = "account_unknown"
	RefusalAccountDisabled      = "account_disabled"
	RefusalAccountUnreadable    = "account_unreadable"
	RefusalSignatureMismatch    = "signature_mismatch"
	RefusalParamRepeated        = "param_repeated"
	RefusalParamNotText         = "param_not_text"
	RefusalMessageSIDMissing    = "message_sid_missing"
	RefusalMessageSIDInvalid    = "message_sid_invalid"
	RefusalAccountSIDInvalid    = "account_sid_invalid"
	RefusalRequiredParamMissing = "required_param_missing"
	RefusalSIDAliasMismatch     = "sid_alias_mismatch"
	RefusalCountInvalid         = "count_invalid"
	RefusalMediaURLMissing      = "media_url_missing"
	RefusalMessageStatusInvalid = "message_status_invalid"
	RefusalDatabaseRefused      = "database_refused"
	RefusalEventsNotBatch       = "events_not_batch"
	RefusalEventsAccount        = "events_account"
)

// Reasons an Event Streams batch is not verified although it may be
// Twilio's (docs/event-streams.md): answered 503, so that Twilio retries,
// and counted by inbox_events_unverified_total; signature_mismatch,
// account_unknown and account_unreadable are the form webhooks' refusals'
// codes.
const (
	RefusalBodyHashAbsent   = "body_hash_absent"
	RefusalBodyHashMismatch = "body_hash_mismatch"
	RefusalBasicAuth        = "basic_auth"
)

// Unverified returns every reason an event batch is answered 503 for.
func Unverified() []string {
	return []string{RefusalAccountUnknown, RefusalAccountUnreadable, RefusalBodyHashAbsent, RefusalBodyHashMismatch, RefusalSignatureMismatch, RefusalBasicAuth}
}

// Refusals returns every refusal code, in the order a request meets the
// checks.
func Refusals() []string {
	return []string{
		RefusalNoRoute, RefusalMethodNotAllowed, RefusalContentType, RefusalBodyTooLarge, RefusalBodyUnreadable,
		RefusalTooManyParams, RefusalMalformedForm, RefusalSignatureMissing, RefusalAccountUnknown,
		RefusalAccountDisabled, RefusalAccountUnreadable, RefusalSignatureMismatch, RefusalParamRepeated,
		RefusalParamNotText, RefusalMessageSIDMissing, RefusalMessageSIDInvalid, RefusalAccountSIDInvalid,
		RefusalRequiredParamMissing, RefusalSIDAliasMismatch, RefusalCountInvalid, RefusalMediaURLMissing,
		RefusalMessageStatusInvalid, RefusalDatabaseRefused, RefusalEventsNotBatch, RefusalEventsAccount,
	}
}
