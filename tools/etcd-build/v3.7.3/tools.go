//go:build tools

// Package tools pins the etcd v3.7.3 commands the etcdsnap tests run as oracles
// (etcd, etcdctl, etcdutl, and the bbolt command at the version etcd's server
// module requires). Nothing here is compiled: .ci/etcd-build runs
// `go build <package>` on each of these main packages, so their versions and
// checksums come from this module's go.mod and go.sum, and the replace lines of
// etcd's own monorepo go.mod files (ignored for a dependency) play no part.
package tools

import (
	_ "go.etcd.io/bbolt/cmd/bbolt"
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
