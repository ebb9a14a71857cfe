// Package schema holds the goose migrations that define the database, embedded
// so the binary can migrate without the source tree. sqlc reads the same files
// as its schema, so the generated code and the database cannot disagree.
package schema

import "embed"

// FS holds every migration, named NNNNN_description.sql so that goose's order
// and sqlc's (lexicographic) order are the same.
//
//go:embed *.sql
var FS embed.FS
