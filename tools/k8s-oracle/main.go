// k8s-oracle: the independent oracle for etcdsnap's object output, built
// from the Kubernetes Go libraries (k8s.io/api, k8s.io/apimachinery's
// protobuf, JSON and CBOR serializers, sigs.k8s.io/yaml) at the versions
// pinned in go.mod. The tests compare etcdsnap's output with what this
// program says; none of etcdsnap's code is involved here.
//
// Commands (each reads standard input, writes standard output):
//
//	decode     JSON lines {"value": base64 of stored bytes, "rv": mod revision (optional)}
//	           -> JSON lines {"json": the object as the API server serves it} or {"error": "..."}
//	yaml2json  a YAML document -> its JSON, read as kubectl reads it (sigs.k8s.io/yaml)
//	samples    -> JSON lines {"key": etcd key, "value": base64 of stored bytes}: typical objects
//	           with zero values, encoded the way the API server stores them
//	fieldtable -> which JSON fields the API server omits when zero (see fieldtable.go)
//	pod        a static pod YAML -> the Pod as JSON, after strict decoding into v1.Pod and
//	           validation (see pod.go); problems on stderr, exit 1
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	imagepolicyv1alpha1 "k8s.io/api/imagepolicy/v1alpha1"
)

// The types of the official serialization fixtures that client-go's scheme
// leaves out (never stored in etcd, but decoded by `etcdsnap decode`).
func init() {
	for _, add := range []func(*runtime.Scheme) error{
		admissionv1.AddToScheme, admissionv1beta1.AddToScheme, apidiscoveryv2.AddToScheme,
		apidiscoveryv2beta1.AddToScheme, imagepolicyv1alpha1.AddToScheme,
	} {
		if err := add(scheme.Scheme); err != nil {
			panic(err)
		}
	}
}

var (
	protoMagic = []byte("k8s\x00")
	cborMagic  = []byte{0xd9, 0xd9, 0xf7}
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: k8s-oracle decode|yaml2json|samples|fieldtable|pod")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "decode":
		err = decodeLines(os.Stdin, os.Stdout)
	case "yaml2json":
		err = yaml2json(os.Stdin, os.Stdout)
	case "samples":
		err = samples(os.Stdout)
	case "fieldtable":
		err = fieldtable(os.Stdout)
	case "pod":
		err = podCheck(os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s-oracle:", err)
		os.Exit(1)
	}
}

type decodeIn struct {
	Value string `json:"value"`
	RV    *int64 `json:"rv,omitempty"`
}

type decodeOut struct {
	JSON  json.RawMessage `json:"json,omitempty"`
	Error string          `json:"error,omitempty"`
}

func decodeLines(r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	enc := json.NewEncoder(bw)
	for sc.Scan() {
		var in decodeIn
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			return fmt.Errorf("input line: %w", err)
		}
		raw, err := base64.StdEncoding.DecodeString(in.Value)
		if err != nil {
			return fmt.Errorf("input value: %w", err)
		}
		var out decodeOut
		if js, err := served(raw, in.RV); err != nil {
			out.Error = err.Error()
		} else {
			out.JSON = js
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	return sc.Err()
}

// served decodes stored bytes and encodes the object as the API server's
// JSON serializer does, with resourceVersion set from the mod revision.
func served(raw []byte, rv *int64) ([]byte, error) {
	var obj runtime.Object
	switch {
	case bytes.HasPrefix(raw, protoMagic):
		s := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
		o, gvk, err := s.Decode(raw, nil, nil)
		if err != nil {
			return nil, err
		}
		o.GetObjectKind().SetGroupVersionKind(*gvk)
		obj = o
	case bytes.HasPrefix(raw, cborMagic):
		s := cbor.NewSerializer(unstructuredCreater{}, scheme.Scheme)
		u := &unstructured.Unstructured{}
		o, _, err := s.Decode(raw, nil, u)
		if err != nil {
			return nil, err
		}
		obj = o
	default:
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, err
		}
		// Built-in kinds stored as JSON decode into their typed struct, as the
		// API server reads them.
		if typed, err := scheme.Scheme.New(u.GroupVersionKind()); err == nil {
			s := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, kjson.SerializerOptions{})
			o, gvk, err := s.Decode(raw, nil, typed)
			if err != nil {
				return nil, err
			}
			o.GetObjectKind().SetGroupVersionKind(*gvk)
			obj = o
		} else {
			obj = u
		}
	}
	if rv != nil {
		if m, err := meta.Accessor(obj); err == nil {
			m.SetResourceVersion(strconv.FormatInt(*rv, 10))
		}
	}
	var buf bytes.Buffer
	s := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, kjson.SerializerOptions{})
	if err := s.Encode(obj, &buf); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// unstructuredCreater makes Unstructured objects for any kind (custom
// resources have no Go type).
type unstructuredCreater struct{}

func (unstructuredCreater) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

func yaml2json(r io.Reader, w io.Writer) error {
	in, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	js, err := yaml.YAMLToJSON(in)
	if err != nil {
		return err
	}
	_, err = w.Write(append(js, '\n'))
	return err
}
