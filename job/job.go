// Package job declares the service's River jobs: each kind's name and its
// arguments, once. The queue runs them (the package each belongs to
// registers its worker with queue.Handle); the store inserts the forward
// jobs in SQL, in the statement that stores what they forward, passing
// these kinds, and a test in package queue holds each inserted row equal to
// what River's own insert makes of these arguments. It depends on nothing of the service's: River needs only Kind.
package job

import (
	"encoding/json"
	"time"
)

// The kinds, as River records them in river_job.kind.
const (
	KindMessage           = "inbox_message"
	KindMessages          = "inbox_messages"
	KindStatus            = "inbox_status"
	KindRetention         = "inbox_retention"
	KindReconcileSchedule = "inbox_reconcile_schedule"
	KindReconcile         = "inbox_reconcile"
	KindRetryFailed       = "inbox_retry_failed"
	KindBackfill          = "inbox_backfill"
	KindMedia             = "inbox_media"
)

// Media keeps the media of a newly stored inbound message: inserted by
// the trigger that makes its rows (sql/schema/00022_media.sql), in the
// statement that stores the message or gives it its media.
type Media struct {
	MessageID int64 `json:"message_id"`
}

// Kind is River's name for the job.
func (Media) Kind() string { return KindMedia }

// Message processes a newly stored inbound message: the forward, by default.
type Message struct {
	SID string `json:"sid"`
	// Batch is the batch job (Messages) whose forward of the message
	// failed and handed it to this job; 0 for a message's first job, or a
	// replay.
	Batch int64 `json:"batch,omitempty"`
	// Destination is the destination it goes to, whose queue it is in; ""
	// for FORWARD_URL's (the default queue).
	Destination string `json:"destination,omitempty"`
}

// Kind is River's name for the job.
func (Message) Kind() string { return KindMessage }

// Messages processes the new inbound messages a group commit stored
// together: one job for the batch, whose messages each get a job of their
// own (Message) when theirs fails.
type Messages struct {
	SIDs []string `json:"sids"`
	// Destination: as Message's.
	Destination string `json:"destination,omitempty"`
}

// Kind is River's name for the job.
func (Messages) Kind() string { return KindMessages }

// Status processes an outbound message's move to a new status.
type Status struct {
	SID    string `json:"sid"`
	Status string `json:"status"`
	// Destination: as Message's.
	Destination string `json:"destination,omitempty"`
}

// Kind is River's name for the job.
func (Status) Kind() string { return KindStatus }

// Retention deletes what is older than the retention; periodic.
type Retention struct{}

// Kind is River's name for the job.
func (Retention) Kind() string { return KindRetention }

// ReconcileSchedule starts a sweep of each account; periodic.
type ReconcileSchedule struct{}

// Kind is River's name for the job.
func (ReconcileSchedule) Kind() string { return KindReconcileSchedule }

// Reconcile sweeps one account's messages on Twilio's API; one at a time
// per account.
type Reconcile struct {
	AccountSID string `json:"account_sid"`
}

// Kind is River's name for the job.
func (Reconcile) Kind() string { return KindReconcile }

// RetryFailed gives every failed or cancelled forward that matches Filter
// a new forward job (the console's Retry all failed); one at a time.
type RetryFailed struct {
	// RunID is the forward_retries row that records its progress.
	RunID int64 `json:"run_id"`
	// Filter is the message filter, as JSON (store.Filter).
	Filter json.RawMessage `json:"filter"`
	// MaxAttempts is the attempts of each new forward job.
	MaxAttempts int16 `json:"max_attempts"`
}

// Kind is River's name for the job.
func (RetryFailed) Kind() string { return KindRetryFailed }

// Backfill hands the destination the stored inbound messages it matches
// since Since (routing's backfill); one at a time per destination.
type Backfill struct {
	// RunID is the backfills row that records its progress.
	RunID int64 `json:"run_id"`
	// Destination is the destination's name: River's unique key, so one
	// runs at a time for each.
	Destination string    `json:"destination" river:"unique"`
	Since       time.Time `json:"since"`
	// MaxAttempts is the attempts of each delivery job it inserts.
	MaxAttempts int16 `json:"max_attempts"`
}

// Kind is River's name for the job.
func (Backfill) Kind() string { return KindBackfill }

// ProcessingKinds are the kinds that hand a message on: the ones a
// message's story (the admin API's jobs) and retention's cleanup cover.
func ProcessingKinds() []string { return []string{KindMessage, KindMessages, KindStatus} }

// Info is a job as an operator reads it: in a message's story, the admin
// API and the console.
type Info struct {
	ID          int64
	Kind        string
	State       string
	Attempt     int16
	MaxAttempts int16
	CreatedAt   time.Time
	ScheduledAt time.Time
	AttemptedAt *time.Time
	FinalizedAt *time.Time
	LastError   string
	// Failures are the job's failed attempts, oldest first, as River
	// recorded them (without their stack traces); a job that succeeded on
	// attempt n has n-1.
	Failures []Failure
	// BatchSize is how many messages a batch job (Messages) forwards;
	// HandedOffBy, for a message's own job, the batch job that gave it the
	// message when its forward failed there.
	BatchSize   int32
	HandedOffBy int64
}

// Failure is one failed attempt of a job.
type Failure struct {
	Attempt int
	At      time.Time
	Error   string
}
