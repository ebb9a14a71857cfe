// Package buildinfo says which build of inbox is running: the version
// stamped at link time or by the module, the VCS revision and time Go
// recorded, and the Go version, for `inbox version`, the start-up log and
// the inbox_build_info metric.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// version is set at link time by a release build
// (-ldflags "-X inbox/internal/buildinfo.version=v1.2.3"); it is never
// written at run time.
var version string

// Info is one build's identity.
type Info struct {
	// Version is the release version, or the module's version, or
	// "(devel)" for a build from a source tree.
	Version string
	// Revision is the VCS commit, with "-dirty" when the tree had
	// uncommitted changes; "unknown" when Go recorded none.
	Revision string
	// Time is the commit's time (RFC 3339), or "unknown".
	Time string
	// GoVersion is the toolchain that built it.
	GoVersion string
}

// Read returns the running binary's Info.
func Read() Info {
	info := Info{Version: "(devel)", Revision: "unknown", Time: "unknown", GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		info.GoVersion = bi.GoVersion
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && info.Revision != "unknown" {
			info.Revision += "-dirty"
		}
	}
	if version != "" {
		info.Version = version
	}
	return info
}

// String is the one line `inbox version` prints.
func (i Info) String() string {
	return fmt.Sprintf("inbox %s (revision %s, %s, %s)", i.Version, i.Revision, i.Time, i.GoVersion)
}
