//go:build tools

// Package tools names the commands .ci/kube builds, so that `go mod tidy`
// keeps every module they need in go.mod and go.sum.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
