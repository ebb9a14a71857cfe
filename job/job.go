// Package job declares the service's River jobs: each kind's name and its
// arguments, once. River runs them (package process registers a worker for
// each); the store inserts the processing jobs in SQL, in the statement
// that stores what they process, passing these kinds, and a test in package
// process holds each inserted row equal to what River's own insert makes of
// these arguments. It depends on nothing: River needs only Kind.
package job

// The kinds, as River records them in river_job.kind.
const (
	KindMessage           = "inbox_message"
	KindStatus            = "inbox_status"
	KindRetention         = "inbox_retention"
	KindReconcileSchedule = "inbox_reconcile_schedule"
	KindReconcile         = "inbox_reconcile"
)

// Message processes a newly stored inbound message: the forward, by default.
type Message struct {
	SID string `json:"sid"`
}

// Kind is River's name for the job.
func (Message) Kind() string { return KindMessage }

// Status processes an outbound message's move to a new status.
type Status struct {
	SID    string `json:"sid"`
	Status string `json:"status"`
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

// ProcessingKinds are the kinds that hand a message on: the ones a
// message's story (the admin API's jobs) and retention's cleanup cover.
func ProcessingKinds() []string { return []string{KindMessage, KindStatus} }
