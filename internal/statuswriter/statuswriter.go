// Package statuswriter remembers the status an HTTP handler answered, for
// the request logs and metrics of both of the service's edges.
package statuswriter

import "net/http"

// Writer wraps a ResponseWriter and remembers the first status written.
type Writer struct {
	http.ResponseWriter
	status int
}

// New wraps w.
func New(w http.ResponseWriter) *Writer { return &Writer{ResponseWriter: w} }

// Status is the status written, or 0 when the handler wrote nothing yet.
func (w *Writer) Status() int { return w.status }

func (w *Writer) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *Writer) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets streaming handlers (River UI, pprof) flush through the wrapper.
func (w *Writer) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
