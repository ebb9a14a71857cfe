package clip_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"inbox/internal/clip"
)

func TestClipKeepsShortTextAndCutsLongAtACharacter(t *testing.T) {
	t.Parallel()
	if got := clip.Clip("hello"); got != "hello" {
		t.Fatalf("short text changed: %q", got)
	}
	long := strings.Repeat("é", 100) // two bytes each
	got := clip.Clip(long)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || len(got) > clip.Max+len("…") {
		t.Fatalf("Clip(long) = %q", got)
	}
	if got := clip.Clip("a\xffb"); got != "a?b" {
		t.Fatalf("invalid UTF-8 kept: %q", got)
	}
}
