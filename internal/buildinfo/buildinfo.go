// Package buildinfo says which build of Doppel is running: its version, the commit it was built
// from and the Go version, for `doppel version` and the doppel_build_info metric.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// version and commit are set at link time by `make build` and the Dockerfile:
//
//	-ldflags "-X github.com/doppelhq/doppel/internal/buildinfo.version=v1.2.3"
//
// commit is only a fallback for builds without VCS stamping (a Docker build context has no .git);
// the commit Go stamps into the binary wins when present.
var (
	version string
	commit  string
)

// Info describes a build.
type Info struct {
	Version   string
	Commit    string
	Modified  bool // the working tree had uncommitted changes
	GoVersion string
}

// Get returns the running binary's build information. Nothing is ever empty: an unknown version is
// "dev" and an unknown commit "unknown", so the metric's labels stay present.
func Get() Info {
	info := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version // `go install ...@v1.2.3`
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}
