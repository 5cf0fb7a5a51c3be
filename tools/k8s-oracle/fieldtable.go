package main

// fieldtable: for every Go struct reachable from the scheme's types, which
// JSON fields the API server's JSON encoder omits when they hold their zero
// value. Protobuf cannot say it: go-to-protobuf writes every non-pointer field,
// zero or not, so a decoder needs the Go JSON tags to print what the API
// server prints. Keyed by the protobuf message name as etcdsnap's descriptor
// set spells it (Go package path without "k8s.io/", '/' -> '.', '-' -> '_').
//
// Output: {"api.core.v1.PodSpec": {"nodeName": "e", "replicas": "p", ...}}
// with one letter per property: e = omitempty, z = omitzero, p = pointer,
// n = a slice or map no tag omits (nil, i.e. absent in protobuf, prints null).
// Fields with none of these (always printed) are left out.

import (
	"encoding/json"
	"io"
	"reflect"
	"sort"
	"strings"

	"k8s.io/client-go/kubernetes/scheme"
)

func protoName(t reflect.Type) string {
	pkg := strings.TrimPrefix(t.PkgPath(), "k8s.io/")
	pkg = strings.NewReplacer("/", ".", "-", "_").Replace(pkg)
	return pkg + "." + t.Name()
}

func fieldtable(w io.Writer) error {
	table := map[string]map[string]string{}
	seen := map[reflect.Type]bool{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			if t.Kind() == reflect.Map {
				visit(t.Key())
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || t.PkgPath() == "" {
			return
		}
		seen[t] = true
		fields := map[string]string{}
		var walk func(t reflect.Type)
		walk = func(t reflect.Type) {
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				tag := f.Tag.Get("json")
				name, opts, _ := strings.Cut(tag, ",")
				if name == "-" {
					continue
				}
				if f.Anonymous && name == "" {
					// An embedded struct: its fields are the parent's in JSON,
					// and it is also a message of its own.
					ft := f.Type
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					visit(ft)
					if ft.Kind() == reflect.Struct {
						walk(ft)
					}
					continue
				}
				if !f.IsExported() {
					continue
				}
				if name == "" {
					name = f.Name
				}
				flags := ""
				for _, o := range strings.Split(opts, ",") {
					switch o {
					case "omitempty":
						flags += "e"
					case "omitzero":
						flags += "z"
					}
				}
				switch f.Type.Kind() {
				case reflect.Pointer:
					flags += "p"
				case reflect.Slice, reflect.Map:
					// A nil slice or map that no tag omits prints as null.
					if flags == "" {
						flags = "n"
					}
				}
				if flags != "" {
					fields[name] = flags
				}
				visit(f.Type)
			}
		}
		walk(t)
		table[protoName(t)] = fields
	}
	names := []string{}
	for gvk, t := range scheme.Scheme.AllKnownTypes() {
		names = append(names, gvk.String())
		visit(t)
	}
	sort.Strings(names)
	enc := json.NewEncoder(w)
	return enc.Encode(table)
}
